//! Network backends: what a guest NIC's frames go to.
//!
//! A NIC model (virtio-net-pci) owns a `Box<dyn NetBackend>` and calls it from
//! the machine thread only. The one backend is user-mode networking
//! ([`user::UserNet`], QEMU's `-netdev user`, "slirp"): a virtual gateway that
//! answers ARP, DHCP, DNS and ping itself and NATs the guest's TCP and UDP to
//! host sockets.
//!
//! Determinism: everything a backend answers without host traffic (ARP, DHCP,
//! ping to the gateway, DNS failures, TCP resets for refused connections once
//! the host said so, TCP timers) is produced inside `transmit`/`poll` from the
//! virtual time passed in, so two runs without host traffic give the same
//! frames. Host sockets are served off the machine thread; what they deliver
//! waits until the machine calls `poll`.
//!
//! For the machine loop: call `poll(now)` when `host_pending()` is true (one
//! atomic load a slice) and when `now` reaches `next_deadline()`, then hand
//! `receive()` frames to the guest as it has room. A halted guest waiting
//! for the network should not skip virtual time faster than real time while
//! host connections are open (the peer answers in real time); it can block
//! on `host_wakeup()` with a timeout instead. Dropping the backend stops its
//! host thread and closes every host socket.

pub mod spec;
pub mod stats;
pub mod user;
pub mod wire;

pub use stats::{DropReason, NetStats, Traffic};

use crate::devices::Nanos;
use crate::snapshot::StateError;

/// The machine thread's side of a network backend.
pub trait NetBackend: Send {
    /// A frame the guest transmitted (Ethernet II, no FCS, full checksums:
    /// the NIC must not offer checksum or segmentation offload), at virtual
    /// time `now`. Replies produced at once are queued for [`receive`](Self::receive).
    fn transmit(&mut self, frame: &[u8], now: Nanos);
    /// The next frame for the guest, if any (call after transmit/poll). The
    /// queue behind it is bounded; a frame the NIC cannot place yet should be
    /// kept by the NIC, not taken.
    fn receive(&mut self) -> Option<Vec<u8>>;
    /// Advance protocol timers to `now` and take in what host sockets delivered.
    fn poll(&mut self, now: Nanos);
    /// Virtual time at which `poll` must run again (TCP retransmits, delayed
    /// ACKs), if any. Recomputed by `transmit` and `poll`.
    fn next_deadline(&self) -> Option<Nanos>;
    /// True when host sockets have delivered something not yet taken in by
    /// `poll`: one atomic load, so the machine can check it every slice.
    fn host_pending(&self) -> bool;
    /// A channel that gets a message whenever `host_pending` becomes true, for
    /// a machine whose guest is halted to block on (with `recv_timeout`, or in
    /// a `crossbeam_channel::select!` beside its other inputs). Wake-ups can be
    /// spurious: check `host_pending` after one.
    fn host_wakeup(&self) -> crossbeam_channel::Receiver<()>;
    fn stats(&self) -> NetStats;
    /// The backend's configuration as QEMU's `-netdev` would spell it,
    /// canonical (defaults written out), for a snapshot to record and a
    /// load to check: a snapshot continues only on the network it was
    /// taken on.
    fn snapshot_config(&self) -> String;
    /// The backend's guest-visible state for a snapshot, as plain data
    /// (what the virtual network remembers about the guest, frames on
    /// their way to it). Host connections are not state: they cannot
    /// follow the snapshot to another process or host.
    fn save_state(&self) -> Result<Vec<u8>, StateError>;
    /// Puts back what [`NetBackend::save_state`] returned, dropping the
    /// host connections this backend has now (see [`user::UserNet`]).
    fn load_state(&mut self, state: &[u8]) -> Result<(), StateError>;
}
