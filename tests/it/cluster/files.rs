//! Files across nodes: on one S3 bucket, a file uploaded through one node is sent, seen,
//! downloaded (by signed link and by Bearer) and removed through another.

use crate::common::cluster::*;
use crate::common::s3::S3Prefix;
use crate::common::*;

#[actix_web::test]
async fn a_file_uploaded_through_one_node_downloads_through_another() {
    let Some(bucket) = S3Prefix::new() else { return };
    let Some(cluster) = Cluster::start(2, |config| config.files.storage_url = Some(bucket.url.clone())).await else {
        return;
    };
    let (node_a, node_b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let alice = node_a.user("alice").await;
    let bob = node_b.user("bob").await;
    let mut b = node_b.ws(&bob).await;
    let conversation = node_a.direct(&alice, &bob).await;

    let document = pdf(300_000);
    let uploaded = node_a.uploaded(&alice, &conversation, "lease.pdf", &document).await;
    let (status, _) = node_a.send_files(&alice, &conversation, "", &[&uploaded["id"]]).await;
    assert_eq!(status, 201);
    // Bob, on B, gets the message with a link signed by A, which B opens.
    let seen = b.event("message:new").await["message"]["attachments"][0].clone();
    let url = seen["url"].as_str().expect("a signed link");
    let fetched = node_b.fetch(url, None, &[]).await;
    assert_eq!((fetched.status, fetched.bytes == document), (200, true));
    let path = format!("/api/attachments/{}", uploaded["id"].as_str().unwrap());
    assert_eq!(node_b.fetch(&path, Some(&bob.token), &[("Range", "bytes=0-9")]).await.bytes, document[..10]);
    // Removed through B: the link stops on A too.
    assert_eq!(node_b.delete(Some(&alice), &path).await.0, 204);
    assert_eq!(node_a.fetch(url, None, &[]).await.status, 404);
    cluster.stop().await;
}
