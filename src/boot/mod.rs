//! What the machine boots when the user names nothing: vx86's own firmware.

pub mod builtin;
