//! One connection's traffic in the message mode: its reader (acks, errors, deliveries, pings)
//! and its writer (each message when it is due, and pongs).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;

use actix_web::web::Bytes;
use awc::ws::{Frame, Message};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc as local;

use crate::clock::Schedule;
use crate::socket::{ErrorData, Incoming, NewMessage, Socket};
use crate::tally::{Sends, State, micros_between};

/// Reads one connection: acks, errors, deliveries; answers pings through the writer.
pub(crate) async fn reader(
    mut stream: SplitStream<Socket>,
    pongs: local::UnboundedSender<Bytes>,
    user_id: String,
    state: Rc<RefCell<State>>,
    alive: Rc<Cell<bool>>,
) {
    // The last seq this session saw, per conversation (a member has one or two).
    let mut last_seq: Vec<(String, u64)> = Vec::new();
    let mut close_code = 1006;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Frame::Text(bytes)) => on_text(&bytes, &user_id, &mut last_seq, &state),
            Ok(Frame::Ping(payload)) => {
                let _ = pongs.send(payload);
            }
            Ok(Frame::Close(reason)) => {
                close_code = reason.map_or(1005, |r| u16::from(r.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    alive.set(false);
    let mut st = state.borrow_mut();
    st.tally.disconnects += 1;
    *st.tally.disconnect_codes.entry(close_code).or_default() += 1;
}

fn on_text(bytes: &[u8], user_id: &str, last_seq: &mut Vec<(String, u64)>, state: &RefCell<State>) {
    let mut st = state.borrow_mut();
    let now = st.clock.now_us();
    let Ok(frame) = serde_json::from_slice::<Incoming>(bytes) else {
        st.error("unparsable_frame");
        return;
    };
    let data = frame.data.map_or("null", |d| d.get());
    match &*frame.kind {
        "ack" => {
            if let Some(i) = frame.reference.as_deref().and_then(|r| r.parse::<usize>().ok()) {
                st.on_ack(i, now);
            }
        }
        "error" => {
            let code = serde_json::from_str::<ErrorData>(data).map(|e| e.code.into_owned());
            st.on_error(frame.reference.as_deref(), code.as_deref().unwrap_or("error"));
        }
        "message:new" => {
            let Ok(new) = serde_json::from_str::<NewMessage>(data) else {
                st.error("unparsable_message");
                return;
            };
            let m = new.message;
            st.tally.news += 1;
            if st.schedule.measured(now) {
                st.tally.news_measured += 1;
            }
            match last_seq.iter_mut().find(|(c, _)| *c == m.conversation_id) {
                Some((_, last)) => {
                    if m.seq <= *last {
                        st.tally.order_violations += 1;
                    }
                    *last = m.seq;
                }
                None => last_seq.push((m.conversation_id.into_owned(), m.seq)),
            }
            // The sender's own echo is counted above but not timed.
            if m.sender_id != user_id
                && let Some(client_id) = m.client_id.as_deref()
            {
                st.on_delivery(client_id, now);
            }
        }
        _ => {}
    }
}

/// Writes one connection: its messages when due, and pongs.
pub(crate) struct Writer {
    pub(crate) sink: SplitSink<Socket, Message>,
    pub(crate) sends: Option<Sends>,
    pub(crate) state: Rc<RefCell<State>>,
    pub(crate) alive: Rc<Cell<bool>>,
    pub(crate) pad: Rc<str>,
    pub(crate) body_size: usize,
    pub(crate) run_id: String,
}

impl Writer {
    pub(crate) async fn run(mut self, mut pongs: local::UnboundedReceiver<Bytes>) {
        let (schedule, clock) = {
            let st = self.state.borrow();
            (st.schedule, st.clock)
        };
        let stride = schedule.senders;
        let mut next = self.sends.as_ref().map_or(u64::MAX, |s| s.first);
        let mut pongs_open = true;
        let far = clock.instant(u64::MAX / 4);
        while pongs_open || next < schedule.total {
            let wake = if next < schedule.total { clock.instant(schedule.due_us(next)) } else { far };
            tokio::select! {
                biased;
                pong = pongs.recv(), if pongs_open => match pong {
                    Some(payload) => {
                        if self.alive.get() && self.sink.send(Message::Pong(payload)).await.is_err() {
                            self.alive.set(false);
                        }
                    }
                    None => pongs_open = false,
                },
                () = tokio::time::sleep_until(wake), if next < schedule.total => {
                    let now = clock.now_us();
                    let mut wrote = false;
                    while next < schedule.total && schedule.due_us(next) <= now {
                        wrote |= self.send(next, &schedule, now).await;
                        next += stride;
                    }
                    if wrote && self.sink.flush().await.is_err() {
                        self.alive.set(false);
                    }
                }
            }
        }
    }

    /// Sends message `i` (due at its scheduled time); whether it was written.
    async fn send(&mut self, i: u64, schedule: &Schedule, now: u64) -> bool {
        let Some(sends) = &self.sends else { return false };
        let due = schedule.due_us(i);
        {
            let mut st = self.state.borrow_mut();
            let idx = usize::try_from(i).unwrap_or(usize::MAX);
            if let Some(rec) = st.recs.get_mut(idx) {
                rec.offered = true;
                rec.expected = sends.others;
            }
            st.tally.offered += 1;
            if schedule.measured(due) {
                st.tally.send_lag.push(micros_between(due, now));
            }
            if !self.alive.get() {
                if let Some(rec) = st.recs.get_mut(idx) {
                    rec.refused = true;
                }
                st.tally.refused += 1;
                st.error("disconnected");
                return false;
            }
        }
        // The body starts with the index, then padding to --body-size characters.
        let mut body = String::with_capacity(self.body_size + 24);
        let _ = write!(body, "{i} ");
        let room = self.body_size.saturating_sub(body.len());
        body.push_str(&self.pad[..room]);
        body.truncate(self.body_size.max(1));
        let mut frame = String::with_capacity(body.len() + 160);
        let _ = write!(
            frame,
            r#"{{"type":"message:send","ref":"{i}","data":{{"conversation_id":"{}","body":"{body}","client_id":"{}-{i}"}}}}"#,
            sends.conversation, self.run_id
        );
        if self.sink.feed(Message::Text(frame.into())).await.is_err() {
            self.alive.set(false);
            let mut st = self.state.borrow_mut();
            if let Some(rec) = st.recs.get_mut(usize::try_from(i).unwrap_or(usize::MAX)) {
                rec.refused = true;
            }
            st.tally.refused += 1;
            st.error("disconnected");
            return false;
        }
        true
    }
}
