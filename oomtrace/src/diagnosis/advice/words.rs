//! How the summary and the advice write sizes, durations, counts and names:
//! one copy, so the sentence and the command say the same numbers.

use oomtrace_event::OomEvent;

pub const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// `512 MiB`, `1 GiB`, `1.5 GiB` (MiB below 1 GiB; one decimal above, dropped when 0).
pub fn size(bytes: u64) -> String {
    if bytes < GIB {
        return format!("{} MiB", bytes.div_ceil(MIB));
    }
    let tenths = (bytes * 10).div_ceil(GIB);
    match tenths % 10 {
        0 => format!("{} GiB", tenths / 10),
        t => format!("{}.{t} GiB", tenths / 10),
    }
}

/// Bytes in MiB, rounded up (what a `--limits=memory=<N>Mi` names).
pub fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// `40 s`, `12 min`, `1 h`, `1 h 20 min`, `3 d`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86_400 => match (seconds % 3600) / 60 {
            0 => format!("{} h", seconds / 3600),
            minutes => format!("{} h {minutes} min", seconds / 3600),
        },
        _ => format!("{} d", seconds / 86_400),
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`.
pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `name` as one shell word: as it is when it holds only characters a
/// Kubernetes or systemd name has, else in single quotes.
pub fn shell_word(name: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | ':' | '@' | '=');
    if !name.is_empty() && name.chars().all(plain) {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', r"'\''"))
    }
}

/// The victim as a person names it: `` `comm` (pid N) ``.
pub fn process(event: &OomEvent) -> String {
    match event.victim.comm.as_deref() {
        Some(comm) => format!("`{comm}` (pid {})", event.victim.pid),
        None => format!("pid {}", event.victim.pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_a_person_writes_them() {
        assert_eq!(size(512 * MIB), "512 MiB");
        assert_eq!(size(512 * MIB - 100), "512 MiB");
        assert_eq!(size(1024 * MIB), "1 GiB");
        assert_eq!(size(1536 * MIB), "1.5 GiB");
        assert_eq!(size(14 * 1024 * MIB + 1), "14.1 GiB");
        assert_eq!(mib(64 * MIB + 1), 65);
        assert_eq!(duration(40), "40 s");
        assert_eq!(duration(59 * 60 + 59), "59 min");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(duration(4800), "1 h 20 min");
        assert_eq!(duration(3 * 86_400 + 5), "3 d");
        let ordinals: Vec<_> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111].map(ordinal).into();
        assert_eq!(ordinals, ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]);
    }

    #[test]
    fn names_are_single_shell_words() {
        assert_eq!(shell_word("api-7d9f8c6b5d-x2x4q"), "api-7d9f8c6b5d-x2x4q");
        assert_eq!(shell_word("kubelet.service"), "kubelet.service");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_word(""), "''");
    }
}
