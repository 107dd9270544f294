//! Ring-buffer records: decoded into typed kernel events and handed to the handler of
//! their table (`retransmits.rs`, `state_changes.rs`, …), which turns them into rows
//! with the shared state in `Enricher`.

use tcpfr_schema::flows::{RawFlowCounters, RawFlowLimits};
use tcpfr_schema::listeners::RawListener;
use tcpfr_schema::raw::{kind, RawHeader};
use tcpfr_schema::resets::RawReset;
use tcpfr_schema::retransmits::RawRetransmit;
use tcpfr_schema::rtt_samples::RawRttSample;
use tcpfr_schema::sockets::RawSocketOwner;
use tcpfr_schema::state_changes::RawStateChange;

use crate::enrich::Enricher;

#[derive(Debug, Clone, Copy)]
pub enum Event {
    Retransmit(RawRetransmit),
    StateChange(RawStateChange),
    Reset(RawReset),
    RttSample(RawRttSample),
    FlowCounters(RawFlowCounters),
    FlowLimits(RawFlowLimits),
    SocketOwner(RawSocketOwner),
    Listener(RawListener),
}

/// Reads a `T` from the front of `bytes` if it is long enough.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is a plain #[repr(C)] struct of integers, valid for any
    // bit pattern; read_unaligned copes with any alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// `None` for records that are too short or of an unknown kind (counted by the caller).
pub fn decode(bytes: &[u8]) -> Option<Event> {
    let hdr: RawHeader = read(bytes)?;
    Some(match hdr.kind {
        kind::RETRANSMIT | kind::RETRANSMIT_SYNACK => Event::Retransmit(read(bytes)?),
        kind::STATE_CHANGE => Event::StateChange(read(bytes)?),
        kind::RESET_SENT | kind::RESET_RECEIVED => Event::Reset(read(bytes)?),
        kind::RTT_SAMPLE => Event::RttSample(read(bytes)?),
        kind::FLOW_COUNTERS => Event::FlowCounters(read(bytes)?),
        kind::FLOW_LIMITS => Event::FlowLimits(read(bytes)?),
        kind::SOCKET_OWNER => Event::SocketOwner(read(bytes)?),
        kind::LISTENER => Event::Listener(read(bytes)?),
        _ => return None,
    })
}

impl Event {
    pub fn header(&self) -> &RawHeader {
        match self {
            Event::Retransmit(e) => &e.hdr,
            Event::StateChange(e) => &e.hdr,
            Event::Reset(e) => &e.hdr,
            Event::RttSample(e) => &e.hdr,
            Event::FlowCounters(e) => &e.hdr,
            Event::FlowLimits(e) => &e.hdr,
            Event::SocketOwner(e) => &e.hdr,
            Event::Listener(e) => &e.hdr,
        }
    }
}

/// Bytes of an event, as the kernel writes it (for tests and benchmarks).
pub fn encode<T: Copy>(ev: &T) -> Vec<u8> {
    // SAFETY: T is a plain #[repr(C)] struct without padding holes (explicit padding).
    unsafe { std::slice::from_raw_parts((ev as *const T).cast::<u8>(), std::mem::size_of::<T>()) }.to_vec()
}

/// Handles one ring-buffer record; one that does not decode is counted.
pub fn handle_bytes(enr: &mut Enricher, bytes: &[u8]) {
    match decode(bytes) {
        Some(ev) => handle(enr, &ev),
        None => enr.undecodable += 1,
    }
}

pub fn handle(enr: &mut Enricher, ev: &Event) {
    let ns = ev.header().netns;
    // Namespaces with traffic; the owner walk lists every socket's, busy or not.
    if ns != 0 && !matches!(ev, Event::SocketOwner(_)) {
        enr.netns_seen.insert(ns);
    }
    match ev {
        Event::Retransmit(e) => crate::retransmits::handle(enr, e),
        Event::StateChange(e) => crate::state_changes::handle(enr, e),
        Event::Reset(e) => crate::resets::handle(enr, e),
        Event::RttSample(e) => crate::rtt_samples::handle(enr, e),
        Event::FlowCounters(e) => crate::flows::handle_counters(enr, e),
        Event::FlowLimits(e) => crate::flows::handle_limits(enr, e),
        Event::SocketOwner(e) => crate::sockets::handle_owner(enr, e),
        Event::Listener(e) => crate::listeners::handle(enr, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_was_encoded_and_rejects_short_or_unknown() {
        let mut ev = RawRetransmit::default();
        ev.hdr.kind = kind::RETRANSMIT;
        ev.segs = 7;
        ev.err = -16;
        let bytes = encode(&ev);
        match decode(&bytes) {
            Some(Event::Retransmit(r)) => assert_eq!(r, ev),
            other => panic!("{other:?}"),
        }
        assert!(decode(&bytes[..30]).is_none());
        let mut unknown = bytes.clone();
        unknown[0] = 200;
        assert!(decode(&unknown).is_none());
        assert!(decode(&[]).is_none());
    }
}
