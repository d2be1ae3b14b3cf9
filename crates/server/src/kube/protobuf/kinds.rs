//! The messages of the core kinds this server decodes, with their field numbers from
//! k8s.io/api `core/v1/generated.proto` and k8s.io/apimachinery `meta/v1/generated.proto`.
//!
//! ObjectMeta is complete. Of the specs and statuses, these tables hold every field kubectl's
//! typed commands send and the common ones beside them; a field missing here is refused by
//! number (415), never dropped.

use super::message::Shape::{
    Bool, Bytes, FieldsJson, Int32, Int64, IntOrString, Message as Msg, MicroTime, Quantity,
    String as Str, Time,
};
use super::message::{field, kept, map, repeated, Field, Message};

static DECODED: [&Message; 6] = [&NAMESPACE, &CONFIG_MAP, &SECRET, &SERVICE, &POD, &EVENT];

/// The message of `v1` `kind`, when this server decodes it.
pub fn core_v1(kind: &str) -> Option<&'static Message> {
    DECODED.into_iter().find(|message| message.name == kind)
}

/// The kinds [`core_v1`] decodes, for the error that names them.
pub fn decoded_kinds() -> Vec<&'static str> {
    DECODED.iter().map(|message| message.name).collect()
}

const fn message(name: &'static str, fields: &'static [Field]) -> Message {
    Message { name, fields }
}

static OBJECT_META: Message = message(
    "ObjectMeta",
    &[
        field(1, "name", Str),
        field(2, "generateName", Str),
        field(3, "namespace", Str),
        field(4, "selfLink", Str),
        field(5, "uid", Str),
        field(6, "resourceVersion", Str),
        field(7, "generation", Int64),
        field(8, "creationTimestamp", Time),
        field(9, "deletionTimestamp", Time),
        kept(10, "deletionGracePeriodSeconds", Int64),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        repeated(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        repeated(14, "finalizers", Str),
        repeated(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY)),
    ],
);

static OWNER_REFERENCE: Message = message(
    "OwnerReference",
    &[
        kept(1, "kind", Str),
        kept(3, "name", Str),
        kept(4, "uid", Str),
        kept(5, "apiVersion", Str),
        kept(6, "controller", Bool),
        kept(7, "blockOwnerDeletion", Bool),
    ],
);

static MANAGED_FIELDS_ENTRY: Message = message(
    "ManagedFieldsEntry",
    &[
        field(1, "manager", Str),
        field(2, "operation", Str),
        field(3, "apiVersion", Str),
        field(4, "time", Time),
        field(6, "fieldsType", Str),
        field(7, "fieldsV1", FieldsJson),
        field(8, "subresource", Str),
    ],
);

/// `metav1.Condition`, as services report them.
static CONDITION: Message = message(
    "Condition",
    &[
        kept(1, "type", Str),
        kept(2, "status", Str),
        field(3, "observedGeneration", Int64),
        kept(4, "lastTransitionTime", Time),
        kept(5, "reason", Str),
        kept(6, "message", Str),
    ],
);

static NAMESPACE: Message = message(
    "Namespace",
    &[
        field(1, "metadata", Msg(&OBJECT_META)),
        field(2, "spec", Msg(&NAMESPACE_SPEC)),
        field(3, "status", Msg(&NAMESPACE_STATUS)),
    ],
);

static NAMESPACE_SPEC: Message = message("NamespaceSpec", &[repeated(1, "finalizers", Str)]);

static NAMESPACE_STATUS: Message = message(
    "NamespaceStatus",
    &[
        field(1, "phase", Str),
        repeated(2, "conditions", Msg(&NAMESPACE_CONDITION)),
    ],
);

static NAMESPACE_CONDITION: Message = message(
    "NamespaceCondition",
    &[
        kept(1, "type", Str),
        kept(2, "status", Str),
        field(4, "lastTransitionTime", Time),
        field(5, "reason", Str),
        field(6, "message", Str),
    ],
);

static CONFIG_MAP: Message = message(
    "ConfigMap",
    &[
        field(1, "metadata", Msg(&OBJECT_META)),
        map(2, "data", Str),
        map(3, "binaryData", Bytes),
        kept(4, "immutable", Bool),
    ],
);

static SECRET: Message = message(
    "Secret",
    &[
        field(1, "metadata", Msg(&OBJECT_META)),
        map(2, "data", Bytes),
        field(3, "type", Str),
        map(4, "stringData", Str),
        kept(5, "immutable", Bool),
    ],
);

static SERVICE: Message = message(
    "Service",
    &[
        field(1, "metadata", Msg(&OBJECT_META)),
        field(2, "spec", Msg(&SERVICE_SPEC)),
        field(3, "status", Msg(&SERVICE_STATUS)),
    ],
);

static SERVICE_SPEC: Message = message(
    "ServiceSpec",
    &[
        repeated(1, "ports", Msg(&SERVICE_PORT)),
        map(2, "selector", Str),
        field(3, "clusterIP", Str),
        field(4, "type", Str),
        repeated(5, "externalIPs", Str),
        field(7, "sessionAffinity", Str),
        field(8, "loadBalancerIP", Str),
        repeated(9, "loadBalancerSourceRanges", Str),
        field(10, "externalName", Str),
        field(11, "externalTrafficPolicy", Str),
        field(12, "healthCheckNodePort", Int32),
        field(13, "publishNotReadyAddresses", Bool),
        field(14, "sessionAffinityConfig", Msg(&SESSION_AFFINITY_CONFIG)),
        kept(17, "ipFamilyPolicy", Str),
        repeated(18, "clusterIPs", Str),
        repeated(19, "ipFamilies", Str),
        kept(20, "allocateLoadBalancerNodePorts", Bool),
        kept(21, "loadBalancerClass", Str),
        kept(22, "internalTrafficPolicy", Str),
        kept(23, "trafficDistribution", Str),
    ],
);

static SERVICE_PORT: Message = message(
    "ServicePort",
    &[
        field(1, "name", Str),
        field(2, "protocol", Str),
        kept(3, "port", Int32),
        field(4, "targetPort", IntOrString),
        field(5, "nodePort", Int32),
        kept(6, "appProtocol", Str),
    ],
);

static SESSION_AFFINITY_CONFIG: Message = message(
    "SessionAffinityConfig",
    &[field(1, "clientIP", Msg(&CLIENT_IP_CONFIG))],
);

static CLIENT_IP_CONFIG: Message = message("ClientIPConfig", &[kept(1, "timeoutSeconds", Int32)]);

static SERVICE_STATUS: Message = message(
    "ServiceStatus",
    &[
        field(1, "loadBalancer", Msg(&LOAD_BALANCER_STATUS)),
        repeated(2, "conditions", Msg(&CONDITION)),
    ],
);

static LOAD_BALANCER_STATUS: Message = message(
    "LoadBalancerStatus",
    &[repeated(1, "ingress", Msg(&LOAD_BALANCER_INGRESS))],
);

static LOAD_BALANCER_INGRESS: Message = message(
    "LoadBalancerIngress",
    &[
        field(1, "ip", Str),
        field(2, "hostname", Str),
        kept(3, "ipMode", Str),
        repeated(4, "ports", Msg(&PORT_STATUS)),
    ],
);

static PORT_STATUS: Message = message(
    "PortStatus",
    &[
        kept(1, "port", Int32),
        kept(2, "protocol", Str),
        kept(3, "error", Str),
    ],
);

static POD: Message = message(
    "Pod",
    &[
        field(1, "metadata", Msg(&OBJECT_META)),
        field(2, "spec", Msg(&POD_SPEC)),
        field(3, "status", Msg(&POD_STATUS)),
    ],
);

static POD_SPEC: Message = message(
    "PodSpec",
    &[
        repeated(2, "containers", Msg(&CONTAINER)),
        field(3, "restartPolicy", Str),
        kept(4, "terminationGracePeriodSeconds", Int64),
        kept(5, "activeDeadlineSeconds", Int64),
        field(6, "dnsPolicy", Str),
        map(7, "nodeSelector", Str),
        field(8, "serviceAccountName", Str),
        field(9, "serviceAccount", Str),
        field(10, "nodeName", Str),
        field(11, "hostNetwork", Bool),
        field(12, "hostPID", Bool),
        field(13, "hostIPC", Bool),
        repeated(15, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        field(16, "hostname", Str),
        field(17, "subdomain", Str),
        field(19, "schedulerName", Str),
        repeated(20, "initContainers", Msg(&CONTAINER)),
        kept(21, "automountServiceAccountToken", Bool),
        repeated(22, "tolerations", Msg(&TOLERATION)),
        repeated(23, "hostAliases", Msg(&HOST_ALIAS)),
        field(24, "priorityClassName", Str),
        kept(25, "priority", Int32),
        kept(27, "shareProcessNamespace", Bool),
        repeated(28, "readinessGates", Msg(&POD_READINESS_GATE)),
        kept(29, "runtimeClassName", Str),
        kept(30, "enableServiceLinks", Bool),
        kept(31, "preemptionPolicy", Str),
        map(32, "overhead", Quantity),
        kept(35, "setHostnameAsFQDN", Bool),
        kept(37, "hostUsers", Bool),
    ],
);

static CONTAINER: Message = message(
    "Container",
    &[
        kept(1, "name", Str),
        field(2, "image", Str),
        repeated(3, "command", Str),
        repeated(4, "args", Str),
        field(5, "workingDir", Str),
        repeated(6, "ports", Msg(&CONTAINER_PORT)),
        repeated(7, "env", Msg(&ENV_VAR)),
        field(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        repeated(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        field(13, "terminationMessagePath", Str),
        field(14, "imagePullPolicy", Str),
        field(16, "stdin", Bool),
        field(17, "stdinOnce", Bool),
        field(18, "tty", Bool),
        field(20, "terminationMessagePolicy", Str),
        kept(24, "restartPolicy", Str),
    ],
);

static CONTAINER_PORT: Message = message(
    "ContainerPort",
    &[
        field(1, "name", Str),
        field(2, "hostPort", Int32),
        kept(3, "containerPort", Int32),
        field(4, "protocol", Str),
        field(5, "hostIP", Str),
    ],
);

static ENV_VAR: Message = message("EnvVar", &[kept(1, "name", Str), field(2, "value", Str)]);

static RESOURCE_REQUIREMENTS: Message = message(
    "ResourceRequirements",
    &[
        map(1, "limits", Quantity),
        map(2, "requests", Quantity),
        repeated(3, "claims", Msg(&RESOURCE_CLAIM)),
    ],
);

static RESOURCE_CLAIM: Message = message(
    "ResourceClaim",
    &[kept(1, "name", Str), field(2, "request", Str)],
);

static VOLUME_MOUNT: Message = message(
    "VolumeMount",
    &[
        kept(1, "name", Str),
        field(2, "readOnly", Bool),
        kept(3, "mountPath", Str),
        field(4, "subPath", Str),
        kept(5, "mountPropagation", Str),
        field(6, "subPathExpr", Str),
        kept(7, "recursiveReadOnly", Str),
    ],
);

static LOCAL_OBJECT_REFERENCE: Message = message("LocalObjectReference", &[field(1, "name", Str)]);

static TOLERATION: Message = message(
    "Toleration",
    &[
        field(1, "key", Str),
        field(2, "operator", Str),
        field(3, "value", Str),
        field(4, "effect", Str),
        kept(5, "tolerationSeconds", Int64),
    ],
);

static HOST_ALIAS: Message = message(
    "HostAlias",
    &[kept(1, "ip", Str), repeated(2, "hostnames", Str)],
);

static POD_READINESS_GATE: Message = message("PodReadinessGate", &[kept(1, "conditionType", Str)]);

static POD_STATUS: Message = message(
    "PodStatus",
    &[
        field(1, "phase", Str),
        repeated(2, "conditions", Msg(&POD_CONDITION)),
        field(3, "message", Str),
        field(4, "reason", Str),
        field(5, "hostIP", Str),
        field(6, "podIP", Str),
        field(7, "startTime", Time),
        field(9, "qosClass", Str),
        field(11, "nominatedNodeName", Str),
        repeated(12, "podIPs", Msg(&POD_IP)),
        field(14, "resize", Str),
        repeated(16, "hostIPs", Msg(&HOST_IP)),
    ],
);

static POD_CONDITION: Message = message(
    "PodCondition",
    &[
        kept(1, "type", Str),
        kept(2, "status", Str),
        field(3, "lastProbeTime", Time),
        field(4, "lastTransitionTime", Time),
        field(5, "reason", Str),
        field(6, "message", Str),
    ],
);

/// `PodIP` and `HostIP` share one shape.
const IP_ADDRESS: &[Field] = &[kept(1, "ip", Str)];
static POD_IP: Message = message("PodIP", IP_ADDRESS);
static HOST_IP: Message = message("HostIP", IP_ADDRESS);

static EVENT: Message = message(
    "Event",
    &[
        field(1, "metadata", Msg(&OBJECT_META)),
        field(2, "involvedObject", Msg(&OBJECT_REFERENCE)),
        field(3, "reason", Str),
        field(4, "message", Str),
        field(5, "source", Msg(&EVENT_SOURCE)),
        field(6, "firstTimestamp", Time),
        field(7, "lastTimestamp", Time),
        field(8, "count", Int32),
        field(9, "type", Str),
        field(10, "eventTime", MicroTime),
        field(11, "series", Msg(&EVENT_SERIES)),
        field(12, "action", Str),
        field(13, "related", Msg(&OBJECT_REFERENCE)),
        kept(14, "reportingComponent", Str),
        kept(15, "reportingInstance", Str),
    ],
);

static OBJECT_REFERENCE: Message = message(
    "ObjectReference",
    &[
        field(1, "kind", Str),
        field(2, "namespace", Str),
        field(3, "name", Str),
        field(4, "uid", Str),
        field(5, "apiVersion", Str),
        field(6, "resourceVersion", Str),
        field(7, "fieldPath", Str),
    ],
);

static EVENT_SOURCE: Message = message(
    "EventSource",
    &[field(1, "component", Str), field(2, "host", Str)],
);

static EVENT_SERIES: Message = message(
    "EventSeries",
    &[
        field(1, "count", Int32),
        field(2, "lastObservedTime", MicroTime),
    ],
);
