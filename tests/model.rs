//! Random writes interleaved with chunked lists, checked against the reference model.

use proptest::prelude::*;
use revkv::{ListOptions, Op, Revision, Txn};

use crate::common::{temp_store, Model};

#[derive(Clone, Debug)]
enum Step {
    Write(Vec<(u8, Option<u8>)>),
    /// Starts a list at the newest revision (or `back` revisions before it).
    Start {
        back: u8,
        limit: u8,
        reverse: bool,
    },
    /// Reads the next chunk of list `which` (modulo the open lists).
    Next {
        which: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => proptest::collection::vec((0u8..24, proptest::option::weighted(0.7, any::<u8>())), 1..4).prop_map(Step::Write),
        1 => (0u8..6, 1u8..6, any::<bool>()).prop_map(|(back, limit, reverse)| Step::Start { back, limit, reverse }),
        3 => any::<u8>().prop_map(|which| Step::Next { which }),
    ]
}

struct OpenList {
    options: ListOptions,
    token: Option<String>,
    revision: Revision,
    seen: Vec<revkv::Entry>,
}

fn key(k: u8) -> Vec<u8> {
    format!("key/{k:02}").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lists_and_gets_match_the_model(steps in proptest::collection::vec(step(), 1..80), pins in 1usize..4) {
        let db = temp_store(pins);
        let mut model = Model::new();
        let mut lists: Vec<OpenList> = Vec::new();
        for step in steps {
            match step {
                Step::Write(changes) => {
                    let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                        changes.into_iter().map(|(k, v)| (key(k), v.map(|v| vec![v]))).collect();
                    changes.sort();
                    changes.dedup_by(|a, b| a.0 == b.0);
                    let ops = changes.iter().map(|(k, v)| match v {
                        Some(v) => Op::put(k.clone(), v.clone()),
                        None => Op::delete(k.clone()),
                    });
                    let response = db.txn(Txn::new().then(ops)).unwrap();
                    model.apply(&changes);
                    prop_assert_eq!(response.revision, model.revision());
                }
                Step::Start { back, limit, reverse } => {
                    let revision = Revision::new(model.revision().get().saturating_sub(u64::from(back)));
                    let options = ListOptions::prefix("key/").limit(usize::from(limit)).reverse(reverse);
                    let page = db.list(&options.clone().revision(revision)).unwrap();
                    prop_assert_eq!(page.revision, revision);
                    let expected_total = model.at(revision).len();
                    prop_assert_eq!(page.remaining.unwrap() as usize, expected_total - page.items.len());
                    lists.push(OpenList { options, token: page.continue_token, revision, seen: page.items });
                }
                Step::Next { which } => {
                    if lists.is_empty() {
                        continue;
                    }
                    let index = usize::from(which) % lists.len();
                    let list = &mut lists[index];
                    if let Some(token) = list.token.take() {
                        let page = db.list(&list.options.clone().continue_token(token)).unwrap();
                        prop_assert_eq!(page.revision, list.revision);
                        list.seen.extend(page.items);
                        let total = model.at(list.revision).len();
                        prop_assert_eq!(page.remaining.unwrap() as usize, total - list.seen.len());
                        list.token = page.continue_token;
                    }
                }
            }
        }
        for list in lists {
            let mut expected: Vec<_> = model.at(list.revision).values().cloned().collect();
            if list.token.is_none() {
                let reverse = list.options == list.options.clone().reverse(true);
                if reverse {
                    expected.reverse();
                }
                prop_assert_eq!(&list.seen, &expected);
            }
        }
        for revision in 0..=model.revision().get() {
            let revision = Revision::new(revision);
            for k in 0..24 {
                let got = db.get_at(key(k), revision).unwrap();
                prop_assert_eq!(got.as_ref(), model.at(revision).get(&key(k)), "key {} at {}", k, revision);
            }
        }
    }
}
