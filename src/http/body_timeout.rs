//! A request body must arrive within `PARLEY_BODY_TIMEOUT_MS` of its headers. actix-web times
//! out slow headers (`client_request_timeout`, 5 s) and the close of a connection
//! (`client_disconnect_timeout`), but nothing in between: a client that sends
//! `Content-Length: 100` and then nothing held its connection, and a worker's attention, for as
//! long as it liked. This middleware puts a deadline on the body stream itself, so whatever
//! reads the body (the JSON extractor, [`super::read_body`]) gets an error when it passes; the
//! answer is `bad_request`, and actix closes a connection whose body was not read to the end.
//!
//! Uploads (`POST …/attachments`) get `PARLEY_UPLOAD_TIMEOUT_MS` instead: a 10 MiB photo over a
//! slow mobile link takes minutes, not seconds.
//!
//! A WebSocket upgrade is left alone, at `/ws` and at `/socket.io/` alike: its "body" is the
//! WebSocket, which lives for hours and has a heartbeat.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_util::Stream;

use crate::config::Exposure;
use crate::error::Error;

/// Middleware: every request body but a WebSocket's gets the deadline.
pub async fn limit(
    exposure: web::Data<Exposure>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let websocket = req
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !websocket {
        // An upload is allowed longer (PARLEY_UPLOAD_TIMEOUT_MS).
        let upload = req.method() == actix_web::http::Method::POST && req.path().ends_with("/attachments");
        let deadline = if upload { exposure.upload_timeout() } else { exposure.body_timeout() };
        let body = Deadline { body: req.take_payload(), timer: Box::pin(tokio::time::sleep(deadline)) };
        let body: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(body);
        req.set_payload(Payload::from(body));
    }
    next.call(req).await
}

/// A body stream that fails once its deadline has passed.
struct Deadline {
    body: Payload,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.body).poll_next(cx) {
            Poll::Pending if self.timer.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(io::ErrorKind::TimedOut, "body timed out")))))
            }
            other => other,
        }
    }
}

/// The protocol's error for a body that could not be read: the deadline's (counted), or another.
pub fn error(err: &PayloadError) -> Error {
    if let PayloadError::Io(io) = err
        && io.kind() == io::ErrorKind::TimedOut
    {
        metrics::counter!(crate::metrics::REFUSED, "limit" => "body_timeout").increment(1);
        return Error::bad_request("the request body did not arrive in time (PARLEY_BODY_TIMEOUT_MS)");
    }
    Error::bad_request(format!("cannot read the body: {err}"))
}
