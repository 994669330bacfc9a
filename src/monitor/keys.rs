//! `sendkey` key names: QEMU's QKeyCode spellings (qapi/ui.json), the ones
//! `sendkey ctrl-alt-f1` or `sendkey ret` use, mapped to the keyboard's keys
//! by position.

use crate::devices::i8042::Key;

/// The key a QEMU key name stands for.
pub fn key(name: &str) -> Option<Key> {
    use Key::*;
    let letters = [
        ("a", A),
        ("b", B),
        ("c", C),
        ("d", D),
        ("e", E),
        ("f", F),
        ("g", G),
        ("h", H),
        ("i", I),
        ("j", J),
        ("k", K),
        ("l", L),
        ("m", M),
        ("n", N),
        ("o", O),
        ("p", P),
        ("q", Q),
        ("r", R),
        ("s", S),
        ("t", T),
        ("u", U),
        ("v", V),
        ("w", W),
        ("x", X),
        ("y", Y),
        ("z", Z),
        ("1", Digit1),
        ("2", Digit2),
        ("3", Digit3),
        ("4", Digit4),
        ("5", Digit5),
        ("6", Digit6),
        ("7", Digit7),
        ("8", Digit8),
        ("9", Digit9),
        ("0", Digit0),
    ];
    if let Some(&(_, k)) = letters.iter().find(|(n, _)| *n == name) {
        return Some(k);
    }
    Some(match name {
        "shift" => ShiftLeft,
        "shift_r" => ShiftRight,
        "alt" => AltLeft,
        "alt_r" | "altgr" => AltRight,
        "ctrl" => ControlLeft,
        "ctrl_r" => ControlRight,
        "meta_l" => MetaLeft,
        "meta_r" => MetaRight,
        "menu" | "compose" => ContextMenu,
        "esc" => Escape,
        "minus" => Minus,
        "equal" => Equal,
        "backspace" => Backspace,
        "tab" => Tab,
        "bracket_left" => BracketLeft,
        "bracket_right" => BracketRight,
        "ret" => Enter,
        "semicolon" => Semicolon,
        "apostrophe" => Quote,
        "grave_accent" => Backquote,
        "backslash" => Backslash,
        "comma" => Comma,
        "dot" => Period,
        "slash" => Slash,
        "asterisk" | "kp_multiply" => NumpadMultiply,
        "spc" => Space,
        "caps_lock" => CapsLock,
        "f1" => F1,
        "f2" => F2,
        "f3" => F3,
        "f4" => F4,
        "f5" => F5,
        "f6" => F6,
        "f7" => F7,
        "f8" => F8,
        "f9" => F9,
        "f10" => F10,
        "f11" => F11,
        "f12" => F12,
        "num_lock" => NumLock,
        "scroll_lock" => ScrollLock,
        "kp_divide" => NumpadDivide,
        "kp_subtract" => NumpadSubtract,
        "kp_add" => NumpadAdd,
        "kp_enter" => NumpadEnter,
        "kp_decimal" => NumpadDecimal,
        "kp_0" => Numpad0,
        "kp_1" => Numpad1,
        "kp_2" => Numpad2,
        "kp_3" => Numpad3,
        "kp_4" => Numpad4,
        "kp_5" => Numpad5,
        "kp_6" => Numpad6,
        "kp_7" => Numpad7,
        "kp_8" => Numpad8,
        "kp_9" => Numpad9,
        "less" => IntlBackslash,
        "print" | "sysrq" => PrintScreen,
        "pause" => Pause,
        "home" => Home,
        "pgup" => PageUp,
        "pgdn" => PageDown,
        "end" => End,
        "left" => ArrowLeft,
        "up" => ArrowUp,
        "down" => ArrowDown,
        "right" => ArrowRight,
        "insert" => Insert,
        "delete" => Delete,
        _ => return None,
    })
}

/// The keys of a `sendkey` argument (`ctrl-alt-f1`), in press order.
pub fn parse_combo(spec: &str) -> Result<Vec<Key>, String> {
    if spec.is_empty() {
        return Err("sendkey: missing key names (e.g. sendkey ctrl-alt-f1)".into());
    }
    spec.split('-')
        .map(|n| key(n).ok_or_else(|| format!("unknown key: '{n}'")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combos_press_in_order() {
        assert_eq!(
            parse_combo("ctrl-alt-f1").unwrap(),
            vec![Key::ControlLeft, Key::AltLeft, Key::F1]
        );
        assert_eq!(parse_combo("ret").unwrap(), vec![Key::Enter]);
        assert!(parse_combo("ctrl-nokey").unwrap_err().contains("nokey"));
        assert!(parse_combo("").is_err());
    }
}
