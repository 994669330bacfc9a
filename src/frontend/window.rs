//! The window frontend (minifb): the VGA frame scaled to the window, host
//! keys turned into PS/2 key events by position, MIPS in the title bar. It
//! owns the main thread (macOS requires the UI there); the machine thread
//! sends frames only when something visible changed.

use super::{DisplayUpdate, HostInput};
use crate::devices::i8042::Key;
use crossbeam_channel::{Receiver, Sender};
use minifb::{InputCallback, Scale, ScaleMode, Window, WindowOptions};

/// Maps a minifb key (by position) to the PS/2 keyboard key; None for keys a
/// 104-key PC keyboard does not have.
pub fn ps2_key(k: minifb::Key) -> Option<Key> {
    use minifb::Key as M;
    use Key as K;
    Some(match k {
        M::Key0 => K::Digit0,
        M::Key1 => K::Digit1,
        M::Key2 => K::Digit2,
        M::Key3 => K::Digit3,
        M::Key4 => K::Digit4,
        M::Key5 => K::Digit5,
        M::Key6 => K::Digit6,
        M::Key7 => K::Digit7,
        M::Key8 => K::Digit8,
        M::Key9 => K::Digit9,
        M::A => K::A,
        M::B => K::B,
        M::C => K::C,
        M::D => K::D,
        M::E => K::E,
        M::F => K::F,
        M::G => K::G,
        M::H => K::H,
        M::I => K::I,
        M::J => K::J,
        M::K => K::K,
        M::L => K::L,
        M::M => K::M,
        M::N => K::N,
        M::O => K::O,
        M::P => K::P,
        M::Q => K::Q,
        M::R => K::R,
        M::S => K::S,
        M::T => K::T,
        M::U => K::U,
        M::V => K::V,
        M::W => K::W,
        M::X => K::X,
        M::Y => K::Y,
        M::Z => K::Z,
        M::F1 => K::F1,
        M::F2 => K::F2,
        M::F3 => K::F3,
        M::F4 => K::F4,
        M::F5 => K::F5,
        M::F6 => K::F6,
        M::F7 => K::F7,
        M::F8 => K::F8,
        M::F9 => K::F9,
        M::F10 => K::F10,
        M::F11 => K::F11,
        M::F12 => K::F12,
        M::Down => K::ArrowDown,
        M::Left => K::ArrowLeft,
        M::Right => K::ArrowRight,
        M::Up => K::ArrowUp,
        M::Apostrophe => K::Quote,
        M::Backquote => K::Backquote,
        M::Backslash => K::Backslash,
        M::Comma => K::Comma,
        M::Equal => K::Equal,
        M::LeftBracket => K::BracketLeft,
        M::Minus => K::Minus,
        M::Period => K::Period,
        M::RightBracket => K::BracketRight,
        M::Semicolon => K::Semicolon,
        M::Slash => K::Slash,
        M::Backspace => K::Backspace,
        M::Delete => K::Delete,
        M::End => K::End,
        M::Enter => K::Enter,
        M::Escape => K::Escape,
        M::Home => K::Home,
        M::Insert => K::Insert,
        M::Menu => K::ContextMenu,
        M::PageDown => K::PageDown,
        M::PageUp => K::PageUp,
        M::Pause => K::Pause,
        M::Space => K::Space,
        M::Tab => K::Tab,
        M::NumLock => K::NumLock,
        M::CapsLock => K::CapsLock,
        M::ScrollLock => K::ScrollLock,
        M::LeftShift => K::ShiftLeft,
        M::RightShift => K::ShiftRight,
        M::LeftCtrl => K::ControlLeft,
        M::RightCtrl => K::ControlRight,
        M::NumPad0 => K::Numpad0,
        M::NumPad1 => K::Numpad1,
        M::NumPad2 => K::Numpad2,
        M::NumPad3 => K::Numpad3,
        M::NumPad4 => K::Numpad4,
        M::NumPad5 => K::Numpad5,
        M::NumPad6 => K::Numpad6,
        M::NumPad7 => K::Numpad7,
        M::NumPad8 => K::Numpad8,
        M::NumPad9 => K::Numpad9,
        M::NumPadDot => K::NumpadDecimal,
        M::NumPadSlash => K::NumpadDivide,
        M::NumPadAsterisk => K::NumpadMultiply,
        M::NumPadMinus => K::NumpadSubtract,
        M::NumPadPlus => K::NumpadAdd,
        M::NumPadEnter => K::NumpadEnter,
        M::LeftAlt => K::AltLeft,
        M::RightAlt => K::AltRight,
        M::LeftSuper => K::MetaLeft,
        M::RightSuper => K::MetaRight,
        _ => return None,
    })
}

/// Forwards host key transitions to the machine as PS/2 key events.
struct KeyForwarder(Sender<HostInput>);

impl InputCallback for KeyForwarder {
    fn add_char(&mut self, _: u32) {}
    fn set_key_state(&mut self, k: minifb::Key, down: bool) {
        if let Some(key) = ps2_key(k) {
            let _ = self.0.send(HostInput::Key(key, down));
        }
    }
}

/// Runs the window until it is closed (sends Quit) or the machine stops;
/// returns the machine's stop reason if it stopped first.
pub fn run(
    title: &str,
    input: Sender<HostInput>,
    display: Receiver<DisplayUpdate>,
) -> Result<Option<String>, minifb::Error> {
    let (mut w, mut h) = (720usize, 400usize);
    let opts = WindowOptions {
        resize: true,
        scale: Scale::X1,
        scale_mode: ScaleMode::AspectRatioStretch,
        ..WindowOptions::default()
    };
    let mut window = Window::new(title, w, h, opts)?;
    window.set_target_fps(60);
    // Every press and release in the order the host delivered them (polling
    // key state once per frame would lose a quick tap).
    window.set_input_callback(Box::new(KeyForwarder(input.clone())));
    let mut buffer = vec![0u32; w * h];
    let mut mips = None;
    while window.is_open() {
        loop {
            match display.try_recv() {
                Ok(DisplayUpdate::Frame(f)) => {
                    if f.width > 0
                        && f.height > 0
                        && f.pixels.len() == (f.width * f.height) as usize
                    {
                        w = f.width as usize;
                        h = f.height as usize;
                        buffer = f.pixels;
                    }
                }
                Ok(DisplayUpdate::Mips(m)) => {
                    if mips != Some(m as u64) {
                        mips = Some(m as u64);
                        window.set_title(&format!("{title} - {m:.0} MIPS"));
                    }
                }
                Ok(DisplayUpdate::Stopped(why)) => return Ok(Some(why)),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return Ok(None),
            }
        }
        window.update_with_buffer(&buffer, w, h)?;
    }
    let _ = input.send(HostInput::Quit);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_by_position() {
        assert_eq!(ps2_key(minifb::Key::A), Some(Key::A));
        assert_eq!(ps2_key(minifb::Key::Key1), Some(Key::Digit1));
        assert_eq!(ps2_key(minifb::Key::LeftCtrl), Some(Key::ControlLeft));
        assert_eq!(ps2_key(minifb::Key::NumPadEnter), Some(Key::NumpadEnter));
        assert_eq!(ps2_key(minifb::Key::F13), None);
    }
}
