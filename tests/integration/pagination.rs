//! List pagination: page sizes, keyset order, page tokens bound to their
//! query, and stability under inserts between pages.

use std::collections::HashSet;

use futures::future::join_all;
use tokend::{
    domain::{Owner, ScopeSet, Timestamp, TokenName},
    grpc::pb,
};
use tonic::Code;
use uuid::Uuid;

use crate::common::*;

/// Upper bound on pages fetched by one walk, so a server that never
/// returns an empty `next_page_token` fails the test instead of hanging it.
const MAX_PAGES: usize = 100;

/// Generates `count` tokens for `owner` through an admin caller, all at
/// once: every request runs on its own task over one shared channel.
async fn generate_concurrently(
    app: &TestApp,
    admin: &str,
    owner: &str,
    count: usize,
) -> Vec<String> {
    let client = app.client().await;
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let mut client = client.clone();
            let request = authed(
                admin,
                pb::GenerateRequest {
                    name: format!("bulk {i}"),
                    scopes: Vec::new(),
                    expiration: Some(ttl_days(30)),
                    owner: owner.to_owned(),
                },
            );
            tokio::spawn(async move { client.generate(request).await })
        })
        .collect();

    let mut ids = Vec::with_capacity(count);
    for joined in join_all(tasks).await {
        let response = joined
            .expect("the task runs to the end")
            .expect("generate a token");
        ids.push(response.into_inner().token.unwrap().id);
    }
    ids
}

/// Creates `count` tokens for `owner` directly through the token manager,
/// which is much faster than Generate over gRPC for large counts.
async fn create_directly(app: &TestApp, owner: &str, count: usize) {
    let now = app.clock.now();
    let expires_at = now.checked_add_micros(30 * DAY * 1_000_000);
    let batches: Vec<usize> = (0..count).collect();
    for batch in batches.chunks(50) {
        let creates = batch.iter().map(|_| {
            app.manager.create(
                Owner::parse(owner).unwrap(),
                TokenName::parse("direct").unwrap(),
                ScopeSet::default(),
                now,
                expires_at,
            )
        });
        for created in join_all(creates).await {
            created.expect("create a token");
        }
    }
}

fn list_request(
    owner: &str,
    page_size: i32,
    page_token: &str,
    include_revoked: bool,
) -> pb::ListRequest {
    pb::ListRequest {
        owner: owner.to_owned(),
        page_size,
        page_token: page_token.to_owned(),
        include_revoked,
    }
}

/// Fetches every page of a query and returns them in order.
async fn walk_pages(
    app: &TestApp,
    caller: &str,
    owner: &str,
    page_size: i32,
    include_revoked: bool,
) -> Vec<pb::ListResponse> {
    let mut pages = Vec::new();
    let mut page_token = String::new();
    for _ in 0..MAX_PAGES {
        let request = list_request(owner, page_size, &page_token, include_revoked);
        let page = app.list(caller, request).await.expect("list a page");
        page_token = page.next_page_token.clone();
        pages.push(page);
        if page_token.is_empty() {
            return pages;
        }
    }
    panic!("the listing did not end within {MAX_PAGES} pages");
}

/// The keyset position of a token: newest first means this key strictly
/// decreases along a listing.
fn position(token: &pb::Token) -> (i64, i32, Uuid) {
    let created = token.created_at.expect("every token has created_at");
    let id = Uuid::parse_str(&token.id).expect("ids are UUIDs");
    (created.seconds, created.nanos, id)
}

fn assert_newest_first(tokens: &[pb::Token]) {
    for (index, pair) in tokens.windows(2).enumerate() {
        assert!(
            position(&pair[0]) > position(&pair[1]),
            "tokens {index} and {} are out of order: {:?} then {:?}",
            index + 1,
            position(&pair[0]),
            position(&pair[1])
        );
    }
}

fn assert_no_duplicates(tokens: &[pb::Token]) {
    let mut seen = HashSet::new();
    for token in tokens {
        assert!(
            seen.insert(token.id.as_str()),
            "token {} is listed twice",
            token.id
        );
    }
}

fn page_sizes(pages: &[pb::ListResponse]) -> Vec<usize> {
    pages.iter().map(|page| page.tokens.len()).collect()
}

fn flatten(pages: Vec<pb::ListResponse>) -> Vec<pb::Token> {
    pages.into_iter().flat_map(|page| page.tokens).collect()
}

fn id_set<'a>(ids: impl IntoIterator<Item = &'a String>) -> HashSet<String> {
    ids.into_iter().cloned().collect()
}

#[tokio::test]
async fn list_pages_concurrent_inserts() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    // The bulk tokens are one second newer than the admin token, so the
    // inventory order depends on created_at as well as on id.
    app.clock.advance_seconds(1);
    let created = generate_concurrently(&app, &admin.secret, "bulk", 250).await;
    assert_eq!(
        id_set(&created).len(),
        250,
        "Generate returned 250 distinct ids"
    );

    let pages = walk_pages(&app, &admin.secret, "bulk", 100, false).await;
    assert_eq!(page_sizes(&pages), [100, 100, 50]);
    assert!(!pages[0].next_page_token.is_empty());
    assert!(!pages[1].next_page_token.is_empty());
    assert!(
        pages[2].next_page_token.is_empty(),
        "the last page has no next_page_token"
    );

    let listed = flatten(pages);
    assert_no_duplicates(&listed);
    assert_eq!(
        id_set(listed.iter().map(|t| &t.id)),
        id_set(&created),
        "the pages hold exactly the created tokens"
    );
    assert_newest_first(&listed);
    // The test clock stands still, so every bulk token has the same
    // created_at and the order between them rests on the id alone.
    let instants: HashSet<_> = listed.iter().map(|t| t.created_at.unwrap()).collect();
    assert_eq!(instants.len(), 1);

    let one_page = app
        .list(&admin.secret, list_request("", 1_000_000, "", false))
        .await
        .unwrap();
    assert_eq!(
        one_page.tokens.len(),
        251,
        "250 bulk tokens and the admin token fit in one capped page"
    );
    assert!(one_page.next_page_token.is_empty());
    assert_newest_first(&one_page.tokens);
    assert_eq!(
        one_page.tokens.last().unwrap().id,
        admin.id,
        "the older admin token comes last"
    );
}

#[tokio::test]
async fn page_size_zero_means_fifty() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let created = generate_concurrently(&app, &admin.secret, "bulk", 120).await;

    let pages = walk_pages(&app, &admin.secret, "bulk", 0, false).await;
    assert_eq!(page_sizes(&pages), [50, 50, 20]);
    let listed = flatten(pages);
    assert_no_duplicates(&listed);
    assert_eq!(id_set(listed.iter().map(|t| &t.id)), id_set(&created));
    assert_newest_first(&listed);
}

#[tokio::test]
async fn page_size_capped_at_thousand() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.clock.advance_seconds(1);
    create_directly(&app, "bulk", 1000).await;

    for page_size in [1001, 1_000_000, i32::MAX] {
        let page = app
            .list(&admin.secret, list_request("", page_size, "", false))
            .await
            .unwrap();
        assert_eq!(page.tokens.len(), 1000, "page_size {page_size}");
        assert!(
            !page.next_page_token.is_empty(),
            "page_size {page_size}: a 1001st token follows"
        );

        let next = list_request("", page_size, &page.next_page_token, false);
        let rest = app.list(&admin.secret, next).await.unwrap();
        let ids: Vec<&str> = rest.tokens.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [admin.id.as_str()],
            "page_size {page_size}: the second page holds the oldest token"
        );
        assert!(rest.next_page_token.is_empty(), "page_size {page_size}");
    }
}

#[tokio::test]
async fn negative_page_size_invalid() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for page_size in [-1, i32::MIN] {
        let result = app
            .list(&admin.secret, list_request("", page_size, "", false))
            .await;
        let message = expect_code(result, Code::InvalidArgument);
        assert!(
            message.contains("page_size"),
            "page_size {page_size}: {message}"
        );
    }
}

#[tokio::test]
async fn page_token_bound_to_query() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    generate_concurrently(&app, &admin.secret, "bulk", 5).await;
    generate_concurrently(&app, &admin.secret, "other", 5).await;

    let first = app
        .list(&admin.secret, list_request("bulk", 2, "", false))
        .await
        .unwrap();
    let page_token = first.next_page_token;
    assert!(!page_token.is_empty());

    let mismatched = [
        (
            "another owner",
            list_request("other", 2, &page_token, false),
        ),
        ("every owner", list_request("", 2, &page_token, false)),
        (
            "include_revoked changed",
            list_request("bulk", 2, &page_token, true),
        ),
    ];
    for (case, request) in mismatched {
        let message = expect_code(
            app.list(&admin.secret, request).await,
            Code::InvalidArgument,
        );
        assert!(message.contains("page_token"), "{case}: {message}");
    }

    let truncated = &page_token[..page_token.len() - 1];
    let mut flipped = page_token.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for garbage in ["garbage", "!!!!", truncated, &flipped, &"A".repeat(10_000)] {
        let request = list_request("bulk", 2, garbage, false);
        let message = expect_code(
            app.list(&admin.secret, request).await,
            Code::InvalidArgument,
        );
        assert!(
            message.contains("page_token"),
            "page_token {garbage:?}: {message}"
        );
    }

    // Another server signs page tokens with another key.
    let other = spawn_app().await;
    let other_admin = other.admin().await;
    generate_concurrently(&other, &other_admin.secret, "bulk", 3).await;
    let foreign = other
        .list(&other_admin.secret, list_request("bulk", 2, "", false))
        .await
        .unwrap();
    let request = list_request("bulk", 2, &foreign.next_page_token, false);
    expect_code(
        app.list(&admin.secret, request).await,
        Code::InvalidArgument,
    );

    let same_query = app
        .list(&admin.secret, list_request("bulk", 2, &page_token, false))
        .await
        .unwrap();
    assert_eq!(
        same_query.tokens.len(),
        2,
        "the page token still works for its own query"
    );
}

#[tokio::test]
async fn revoked_hidden_unless_requested() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let created = generate_concurrently(&app, &admin.secret, "bulk", 5).await;
    let revoked = [created[1].clone(), created[3].clone()];
    for id in &revoked {
        app.revoke(&admin.secret, id).await.unwrap();
    }

    let default = flatten(walk_pages(&app, &admin.secret, "bulk", 2, false).await);
    assert_eq!(default.len(), 3);
    for token in &default {
        assert!(
            !revoked.contains(&token.id),
            "revoked token {} is listed by default",
            token.id
        );
        assert_eq!(token.status(), pb::TokenStatus::Active);
    }

    let every = flatten(walk_pages(&app, &admin.secret, "bulk", 2, true).await);
    assert_eq!(id_set(every.iter().map(|t| &t.id)), id_set(&created));
    assert_no_duplicates(&every);
    assert_newest_first(&every);
    for token in every.iter().filter(|t| revoked.contains(&t.id)) {
        assert_eq!(
            token.status(),
            pb::TokenStatus::Revoked,
            "token {}",
            token.id
        );
        assert!(token.revoked_at.is_some(), "token {}", token.id);
    }
}

#[tokio::test]
async fn insert_between_pages_no_gaps() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let created = generate_concurrently(&app, &admin.secret, "bulk", 30).await;
    let start = app.clock.now();

    let first = app
        .list(&admin.secret, list_request("bulk", 10, "", false))
        .await
        .unwrap();
    assert_eq!(first.tokens.len(), 10);

    // One token newer than every original, one at the same instant and one
    // older, so inserts land before, among and after the remaining pages.
    app.clock.advance_seconds(1);
    let newer = app.generate_for(&admin.secret, "bulk", &[]).await;
    let older_time = Timestamp::from_micros(start.as_micros() - DAY * 1_000_000).unwrap();
    let expires_at = start.checked_add_micros(30 * DAY * 1_000_000);
    for at in [start, older_time] {
        app.manager
            .create(
                Owner::parse("bulk").unwrap(),
                TokenName::parse("late").unwrap(),
                ScopeSet::default(),
                at,
                expires_at,
            )
            .await
            .expect("create a token between pages");
    }

    let mut listed = first.tokens;
    let mut page_token = first.next_page_token;
    let mut pages = 1;
    while !page_token.is_empty() {
        assert!(
            pages < MAX_PAGES,
            "the listing did not end within {MAX_PAGES} pages"
        );
        let page = app
            .list(&admin.secret, list_request("bulk", 10, &page_token, false))
            .await
            .unwrap();
        listed.extend(page.tokens);
        page_token = page.next_page_token;
        pages += 1;
    }

    assert_no_duplicates(&listed);
    assert_newest_first(&listed);
    let listed_ids = id_set(listed.iter().map(|t| &t.id));
    for id in &created {
        assert!(
            listed_ids.contains(id),
            "original token {id} is missing from the pages"
        );
    }
    assert!(
        !listed_ids.contains(&newer.id),
        "a token newer than the cursor appears on a later page"
    );
    let older_listed = listed
        .iter()
        .any(|t| t.created_at.unwrap().seconds < start.to_unix().0);
    assert!(
        older_listed,
        "a token older than the cursor appears on a later page"
    );
}
