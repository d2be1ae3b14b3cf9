//! A chunk reads its records either from the latest pointers' copies, in key order, or from
//! the log itself when the run's records lie next to each other there (after a load in key
//! order). Both must return the same entries: forward and reverse, across gaps the log scan
//! steps over or seeks past, and at a pinned revision whose keys changed since.

use revkv::{Db, Entry, ListOptions, Op, Put, Txn};

fn key(i: usize) -> String {
    format!("seq/{i:05}")
}

/// Keys written in key order, 500 to a transaction: their records are adjacent in the log.
fn load_in_key_order(db: &Db, count: usize) -> revkv::Result<()> {
    for start in (0..count).step_by(500) {
        let ops = (start..(start + 500).min(count))
            .map(|i| Op::Put(Put::new(key(i), format!("v{i}")).label("n", (i % 3).to_string())));
        db.txn(Txn::new().then(ops))?;
    }
    Ok(())
}

fn whole_list(db: &Db, options: &ListOptions) -> revkv::Result<Vec<Entry>> {
    let mut items = Vec::new();
    let mut next = options.clone();
    loop {
        let page = db.list(&next)?;
        items.extend(page.items);
        match page.continue_token {
            Some(token) => next = options.clone().continue_token(token),
            None => return Ok(items),
        }
    }
}

fn assert_lists(
    db: &Db,
    expected: &[usize],
    values: impl Fn(usize) -> String,
) -> revkv::Result<()> {
    for limit in [1, 7, 100, 10_000] {
        for reverse in [false, true] {
            let options = ListOptions::prefix("seq/").limit(limit).reverse(reverse);
            let got: Vec<(String, String)> = whole_list(db, &options)?
                .into_iter()
                .map(|e| {
                    (
                        String::from_utf8(e.key).unwrap(),
                        String::from_utf8(e.value).unwrap(),
                    )
                })
                .collect();
            let mut want: Vec<(String, String)> =
                expected.iter().map(|&i| (key(i), values(i))).collect();
            if reverse {
                want.reverse();
            }
            assert_eq!(got, want, "limit {limit}, reverse {reverse}");
        }
    }
    Ok(())
}

#[test]
fn a_load_in_key_order_lists_the_same_through_gaps_of_every_size() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let count = 3_000;
    load_in_key_order(&db, count)?;
    assert_lists(&db, &(0..count).collect::<Vec<_>>(), |i| format!("v{i}"))?;
    // Every eighth key gone: gaps of one record, which the log scan steps over; and runs of
    // forty gone, past which it seeks.
    let gone = |i: usize| i % 8 == 5 || (1000..1040).contains(&i) || (2500..2600).contains(&i);
    for i in (0..count).filter(|&i| gone(i)) {
        db.delete(key(i))?;
    }
    let left: Vec<usize> = (0..count).filter(|&i| !gone(i)).collect();
    assert_lists(&db, &left, |i| format!("v{i}"))?;
    let filtered = ListOptions::prefix("seq/").label_selector("n=1".parse().expect("a selector"));
    let ones: Vec<Vec<u8>> = whole_list(&db, &filtered.limit(50))?
        .into_iter()
        .map(|e| e.key)
        .collect();
    let want: Vec<Vec<u8>> = left
        .iter()
        .filter(|&&i| i % 3 == 1)
        .map(|&i| key(i).into_bytes())
        .collect();
    assert_eq!(ones, want);
    Ok(())
}

#[test]
fn a_pinned_list_of_a_load_in_key_order_reads_its_revision_while_keys_change() -> revkv::Result<()>
{
    let db = Db::temporary()?;
    let count = 2_000;
    load_in_key_order(&db, count)?;
    for reverse in [false, true] {
        let options = ListOptions::prefix("seq/").limit(300).reverse(reverse);
        let first = db.list(&options)?;
        let mut items = first.items;
        let mut token = first.continue_token;
        let mut round = 0;
        while let Some(next) = token {
            // Keys ahead of the list change; the list must still see their first values.
            for i in (round * 97..count).step_by(211) {
                db.put(key(i), "changed")?;
            }
            round += 1;
            let page = db.list(&options.clone().continue_token(next))?;
            items.extend(page.items);
            token = page.continue_token;
        }
        let mut want: Vec<String> = (0..count).map(key).collect();
        if reverse {
            want.reverse();
        }
        let got: Vec<String> = items
            .iter()
            .map(|e| String::from_utf8(e.key.clone()).unwrap())
            .collect();
        assert_eq!(got, want, "reverse {reverse}");
        for entry in &items {
            let i: usize = String::from_utf8_lossy(&entry.key[4..])
                .parse()
                .expect("a number");
            assert_eq!(
                entry.value,
                format!("v{i}").into_bytes(),
                "reverse {reverse}"
            );
        }
        load_in_key_order(&db, count)?;
    }
    Ok(())
}
