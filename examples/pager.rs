//! Reads one list four ways: collected whole, visited with an early stop, iterated item by item,
//! and served page by page with resumable tokens over a filtering source; then a folder with its
//! subfolders, as Swift lists it.
//!
//! Run it with `cargo run --example pager`.

use revkv::{Db, Items, ListOptions, ListPage, ListPager, Listed, Pages};

/// Why a visit stopped early.
#[derive(Debug)]
enum Visit {
    FoundFailure(Vec<u8>),
    Store(revkv::Error),
}

impl From<revkv::Error> for Visit {
    fn from(error: revkv::Error) -> Self {
        Visit::Store(error)
    }
}

fn key(listed: &Listed) -> String {
    String::from_utf8_lossy(listed.key()).into_owned()
}

fn main() -> revkv::Result<()> {
    let db = Db::temporary()?;
    for i in 1..=25 {
        let state = if i % 4 == 0 { "failed" } else { "done" };
        db.put(format!("jobs/{i:03}"), state)?;
    }
    let jobs = ListOptions::prefix("jobs/");

    let pager = ListPager::new(db.clone()).page_size(10);
    let list = pager.list(&jobs)?;
    println!(
        "list: {} jobs at revision {}, paginated: {}",
        list.items.len(),
        list.revision,
        list.paginated
    );

    let outcome = pager.each(&jobs, |job| match job {
        Listed::Item(job) if job.value == b"failed" => Err(Visit::FoundFailure(job.key)),
        _ => Ok(()),
    });
    match outcome {
        Err(Visit::FoundFailure(job)) => {
            println!("each: stopped at {}", String::from_utf8_lossy(&job));
        }
        Err(Visit::Store(error)) => return Err(error),
        Ok(()) => println!("each: no job failed"),
    }

    let mut items = Items::new(db.clone(), jobs.clone()).page_size(8);
    let first = items.next().transpose()?.map(|job| key(&job));
    println!(
        "items: first {first:?}, {:?} more to come",
        items.remaining()
    );

    // A stateless handler serving failed jobs three at a time: the filter makes the store's
    // chunks short or empty, yet every page but the last holds exactly three jobs.
    let failed = |options: &ListOptions| -> revkv::Result<ListPage> {
        let mut page = db.list(options)?;
        page.items.retain(|job| job.value == b"failed");
        page.remaining = None;
        Ok(page)
    };
    let mut token: Option<String> = None;
    loop {
        let mut pages = Pages::new(failed, jobs.clone());
        pages.set_page_size(3);
        if let Some(token) = token.take() {
            pages.set_page_token(token);
        }
        let Some(page) = pages.next_page()? else {
            println!("pages: no more failed jobs");
            break;
        };
        token = pages.next_page_token().map(str::to_owned);
        let keys: Vec<String> = page.iter().map(key).collect();
        println!("pages: {keys:?}, next token: {token:?}");
        if token.is_none() {
            break;
        }
    }

    // Swift-style: the folder `logs/` with its subfolders, two names a chunk.
    for name in [
        "logs/2024/jan",
        "logs/2024/feb",
        "logs/readme",
        "logs/2025/jan",
    ] {
        db.put(name, "...")?;
    }
    let folder = ListOptions::prefix("logs/").delimiter("/");
    let names = Items::new(db, folder)
        .page_size(2)
        .map(|listed| listed.map(|listed| key(&listed)))
        .collect::<revkv::Result<Vec<_>>>()?;
    println!("folder: {names:?}");
    Ok(())
}
