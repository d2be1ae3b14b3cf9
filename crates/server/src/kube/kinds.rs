//! The kinds the Kubernetes API serves, where their objects live in the key space, and which
//! of their fields selectors match.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::KindConfig;

/// One resource: its names in URLs and JSON, its scope, and its selectable fields.
#[derive(Clone, Debug)]
pub struct Kind {
    /// Empty for the core group, served under `/api/v1`.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Dotted paths beyond `metadata.name` and `metadata.namespace`.
    pub selectable_fields: Vec<String>,
}

impl Kind {
    fn core(kind: &str, plural: &str, namespaced: bool, short: &[&str], fields: &[&str]) -> Self {
        Kind {
            group: String::new(),
            version: "v1".to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: short.iter().map(|name| (*name).to_owned()).collect(),
            selectable_fields: fields.iter().map(|field| (*field).to_owned()).collect(),
        }
    }

    /// `v1` for the core group, `<group>/<version>` otherwise.
    pub fn api_version(&self) -> String {
        group_version(&self.group, &self.version)
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Where this kind's objects live, in one namespace or in all of them. Object names hold
    /// no `/`, so a namespace's objects are exactly the keys under its prefix.
    pub fn prefix(&self, namespace: Option<&str>) -> Vec<u8> {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        let mut prefix = format!("kube/{group}/{}/", self.plural);
        if let Some(namespace) = namespace {
            prefix.push_str(namespace);
            prefix.push('/');
        }
        prefix.into_bytes()
    }

    pub fn key(&self, namespace: Option<&str>, name: &str) -> Vec<u8> {
        let mut key = self.prefix(namespace);
        key.extend_from_slice(name.as_bytes());
        key
    }

    /// The fields a field selector matches: the object's name and namespace, and the kind's
    /// selectable fields that hold strings.
    pub fn fields(&self, object: &Value) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        let mut select = |path: &str| {
            let found = path
                .split('.')
                .try_fold(object, |value, step| value.get(step));
            if let Some(Value::String(text)) = found {
                fields.insert(path.to_owned(), text.clone());
            }
        };
        select("metadata.name");
        if self.namespaced {
            select("metadata.namespace");
        }
        self.selectable_fields.iter().for_each(|path| select(path));
        fields
    }
}

pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Every kind served: the core ones and the configured ones.
#[derive(Clone, Debug)]
pub struct Kinds(Vec<Kind>);

impl Kinds {
    pub fn new(configured: &[KindConfig]) -> Self {
        let mut kinds = vec![
            Kind::core("Namespace", "namespaces", false, &["ns"], &["status.phase"]),
            Kind::core("ConfigMap", "configmaps", true, &["cm"], &[]),
            Kind::core("Secret", "secrets", true, &[], &["type"]),
            Kind::core(
                "Pod",
                "pods",
                true,
                &["po"],
                &["status.phase", "spec.nodeName", "spec.restartPolicy"],
            ),
            Kind::core("Service", "services", true, &["svc"], &["spec.clusterIP"]),
            Kind::core(
                "Event",
                "events",
                true,
                &["ev"],
                &[
                    "involvedObject.kind",
                    "involvedObject.name",
                    "involvedObject.namespace",
                    "reason",
                    "type",
                ],
            ),
        ];
        kinds.extend(configured.iter().map(|kind| {
            Kind {
                group: kind.group.clone(),
                version: kind.version.clone(),
                kind: kind.kind.clone(),
                plural: kind.plural.clone(),
                singular: kind
                    .singular
                    .clone()
                    .unwrap_or_else(|| kind.kind.to_ascii_lowercase()),
                namespaced: kind.namespaced,
                short_names: kind.short_names.clone(),
                selectable_fields: kind.selectable_fields.clone(),
            }
        }));
        Kinds(kinds)
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Kind> {
        self.0
            .iter()
            .find(|kind| kind.group == group && kind.version == version && kind.plural == plural)
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Kind> + 'a {
        self.0
            .iter()
            .filter(move |kind| kind.group == group && kind.version == version)
    }

    /// The named groups (not the core one), each with its versions in declaration order.
    pub fn groups(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for kind in self.0.iter().filter(|kind| !kind.group.is_empty()) {
            let versions = groups.entry(&kind.group).or_default();
            if !versions.contains(&kind.version.as_str()) {
                versions.push(&kind.version);
            }
        }
        groups
    }
}
