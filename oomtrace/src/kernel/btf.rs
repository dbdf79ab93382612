//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just what
//! oomtrace needs to find struct member offsets, struct sizes, array element
//! types, enum values and whether a function or tracepoint is described.
//!
//! The raw bytes are kept and types are indexed by their byte position, so a
//! ~6 MiB BTF costs one allocation plus 4 bytes per type. (aya-obj's `Btf`
//! does not expose member lookups publicly.)

use std::path::Path;

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;
const HEADER_MIN_LEN: usize = 24;

/// BTF type kinds (`BTF_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    DataSec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::Int,
            2 => Self::Ptr,
            3 => Self::Array,
            4 => Self::Struct,
            5 => Self::Union,
            6 => Self::Enum,
            7 => Self::Fwd,
            8 => Self::Typedef,
            9 => Self::Volatile,
            10 => Self::Const,
            11 => Self::Restrict,
            12 => Self::Func,
            13 => Self::FuncProto,
            14 => Self::Var,
            15 => Self::DataSec,
            16 => Self::Float,
            17 => Self::DeclTag,
            18 => Self::TypeTag,
            19 => Self::Enum64,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {cause} (is CONFIG_DEBUG_INFO_BTF enabled in this kernel?)")]
    Read { path: String, cause: std::io::Error },
    #[error("not little-endian BTF data (bad magic or header shorter than {HEADER_MIN_LEN} bytes)")]
    BadHeader,
    #[error("BTF data is truncated: {what} at byte {at} runs past the end")]
    Truncated { what: &'static str, at: usize },
    #[error("unknown BTF type kind {kind} at type id {id}")]
    UnknownKind { kind: u32, id: u32 },
}

/// One parsed type header.
#[derive(Clone, Copy, Debug)]
struct Header {
    name_off: u32,
    kind: Kind,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
    /// Byte position of the data following the 12-byte header.
    data: usize,
}

/// A kernel type a tp_btf or fentry program is loaded on: the kernel wants
/// its id in its own BTF (`attach_btf_id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachTarget {
    /// [`Kind::Typedef`] for a tracepoint's `btf_trace_<event>`, [`Kind::Func`] for a function.
    pub kind: Kind,
    pub name: String,
    /// Its type id in the kernel's BTF.
    pub id: u32,
}

/// A member of a struct or union.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub type_id: u32,
    pub bit_offset: u32,
}

pub struct Btf {
    /// The whole BTF blob; the type and string sections are ranges of it.
    data: Vec<u8>,
    types_range: std::ops::Range<usize>,
    strings_range: std::ops::Range<usize>,
    /// Byte position of each type header in the type section; index = type id - 1.
    index: Vec<u32>,
}

fn u32_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u32, BtfError> {
    bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(BtfError::Truncated { what, at })
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_path(Path::new(VMLINUX_BTF))
    }

    pub fn from_path(path: &Path) -> Result<Self, BtfError> {
        let data =
            std::fs::read(path).map_err(|source| BtfError::Read { path: path.display().to_string(), cause: source })?;
        Self::parse(data)
    }

    pub fn parse(data: impl Into<Vec<u8>>) -> Result<Self, BtfError> {
        let data = data.into();
        if data.len() < HEADER_MIN_LEN || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
            return Err(BtfError::BadHeader);
        }
        let header_len = u32_at(&data, 4, "header")? as usize;
        let type_off = u32_at(&data, 8, "header")? as usize;
        let type_len = u32_at(&data, 12, "header")? as usize;
        let str_off = u32_at(&data, 16, "header")? as usize;
        let str_len = u32_at(&data, 20, "header")? as usize;
        let section = |off: usize, len: usize, what| {
            let start = header_len + off;
            if start + len > data.len() {
                return Err(BtfError::Truncated { what, at: start });
            }
            Ok(start..start + len)
        };
        let types_range = section(type_off, type_len, "type section")?;
        let strings_range = section(str_off, str_len, "string section")?;
        let mut btf = Self { data, types_range, strings_range, index: Vec::new() };
        btf.build_index()?;
        Ok(btf)
    }

    fn types(&self) -> &[u8] {
        &self.data[self.types_range.clone()]
    }

    fn strings(&self) -> &[u8] {
        &self.data[self.strings_range.clone()]
    }

    fn build_index(&mut self) -> Result<(), BtfError> {
        let mut at = 0usize;
        let len = self.types_range.len();
        let mut index = Vec::new();
        while at < len {
            let id = index.len() as u32 + 1;
            let info = u32_at(self.types(), at + 4, "type header")?;
            let raw_kind = (info >> 24) & 0x1f;
            let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind { kind: raw_kind, id })?;
            let vlen = (info & 0xffff) as usize;
            let extra = match kind {
                Kind::Int | Kind::Var | Kind::DeclTag => 4,
                Kind::Array => 12,
                Kind::Struct | Kind::Union | Kind::DataSec | Kind::Enum64 => 12 * vlen,
                Kind::Enum | Kind::FuncProto => 8 * vlen,
                _ => 0,
            };
            index.push(at as u32);
            at += 12 + extra;
        }
        if at > len {
            return Err(BtfError::Truncated { what: "last type", at });
        }
        self.index = index;
        Ok(())
    }

    /// Number of types (ids run from 1 to this).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn header(&self, id: u32) -> Option<Header> {
        let at = *self.index.get((id as usize).checked_sub(1)?)? as usize;
        let name_off = u32_at(self.types(), at, "type").ok()?;
        let info = u32_at(self.types(), at + 4, "type").ok()?;
        let size_or_type = u32_at(self.types(), at + 8, "type").ok()?;
        Some(Header {
            name_off,
            kind: Kind::from_raw((info >> 24) & 0x1f)?,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            size_or_type,
            data: at + 12,
        })
    }

    fn name_bytes(&self, off: u32) -> &[u8] {
        let rest = self.strings().get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The name of a type ("" for anonymous types).
    pub fn type_name(&self, id: u32) -> String {
        self.header(id).map(|h| String::from_utf8_lossy(self.name_bytes(h.name_off)).into_owned()).unwrap_or_default()
    }

    pub fn kind(&self, id: u32) -> Option<Kind> {
        self.header(id).map(|h| h.kind)
    }

    /// The first type of `kind` named `name`.
    pub fn find(&self, kind: Kind, name: &str) -> Option<u32> {
        let wanted = name.as_bytes();
        (1..=self.index.len() as u32)
            .find(|&id| self.header(id).is_some_and(|h| h.kind == kind && self.name_bytes(h.name_off) == wanted))
    }

    /// Follows typedefs and qualifiers to the underlying type.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.header(id) {
                Some(h)
                    if matches!(
                        h.kind,
                        Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
                    ) =>
                {
                    id = h.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// Size in bytes of a struct, union, int or enum.
    pub fn size_of(&self, id: u32) -> Option<u32> {
        let h = self.header(self.resolve(id))?;
        matches!(h.kind, Kind::Struct | Kind::Union | Kind::Int | Kind::Enum | Kind::Enum64).then_some(h.size_or_type)
    }

    /// Element type of an array type.
    pub fn array_element(&self, id: u32) -> Option<u32> {
        let h = self.header(self.resolve(id))?;
        (h.kind == Kind::Array).then(|| u32_at(self.types(), h.data, "array").ok()).flatten()
    }

    fn members(&self, id: u32) -> Vec<(u32, Member)> {
        let Some(h) = self.header(self.resolve(id)) else {
            return Vec::new();
        };
        if !matches!(h.kind, Kind::Struct | Kind::Union) {
            return Vec::new();
        }
        (0..h.vlen)
            .filter_map(|i| {
                let at = h.data + i * 12;
                let name_off = u32_at(self.types(), at, "member").ok()?;
                let type_id = u32_at(self.types(), at + 4, "member").ok()?;
                let raw = u32_at(self.types(), at + 8, "member").ok()?;
                let bit_offset = if h.kind_flag { raw & 0x00ff_ffff } else { raw };
                Some((name_off, Member { type_id, bit_offset }))
            })
            .collect()
    }

    /// A member of a struct/union by name, searching anonymous members too;
    /// the bit offset is from the start of the outer type.
    pub fn member(&self, id: u32, name: &str) -> Option<Member> {
        let members = self.members(id);
        let wanted = name.as_bytes();
        if let Some((_, m)) = members.iter().find(|(off, _)| self.name_bytes(*off) == wanted) {
            return Some(*m);
        }
        members.iter().filter(|(off, _)| self.name_bytes(*off).is_empty()).find_map(|(_, outer)| {
            self.member(outer.type_id, name)
                .map(|inner| Member { type_id: inner.type_id, bit_offset: outer.bit_offset + inner.bit_offset })
        })
    }

    /// Byte offset of `field` in `struct name`; `None` if either is missing or
    /// the member is a bitfield.
    pub fn member_offset(&self, struct_name: &str, field: &str) -> Option<u32> {
        let id = self.find(Kind::Struct, struct_name)?;
        let member = self.member(id, field)?;
        (member.bit_offset % 8 == 0).then_some(member.bit_offset / 8)
    }

    /// Value of an enumerator, searching every enum.
    pub fn enum_value(&self, enumerator: &str) -> Option<i64> {
        let wanted = enumerator.as_bytes();
        (1..=self.index.len() as u32).find_map(|id| {
            let h = self.header(id)?;
            let (entry, wide) = match h.kind {
                Kind::Enum => (8, false),
                Kind::Enum64 => (12, true),
                _ => return None,
            };
            (0..h.vlen).find_map(|i| {
                let at = h.data + i * entry;
                let name_off = u32_at(self.types(), at, "enumerator").ok()?;
                if self.name_bytes(name_off) != wanted {
                    return None;
                }
                let low = u32_at(self.types(), at + 4, "enumerator").ok()?;
                Some(if wide {
                    let high = u32_at(self.types(), at + 8, "enumerator").ok()?;
                    ((high as u64) << 32 | low as u64) as i64
                } else {
                    low as i32 as i64
                })
            })
        })
    }

    /// Whether the kernel describes function `name` (fentry needs it).
    pub fn has_function(&self, name: &str) -> bool {
        self.find(Kind::Func, name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob from raw type records and a string table.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let type_bytes: Vec<u8> = types.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]); // version, flags
        out.extend_from_slice(&24u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(type_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&(type_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&type_bytes);
        out.extend_from_slice(strings);
        out
    }

    fn info(kind: u32, vlen: u32) -> u32 {
        kind << 24 | vlen
    }

    #[test]
    fn finds_members_through_anonymous_unions() {
        // strings: 0 "", 1 "long", 6 "outer", 12 "a", 14 "b"
        let strings = b"\0long\0outer\0a\0b\0";
        let types = [
            // [1] int long, 8 bytes
            1,
            info(1, 0),
            8,
            64,
            // [2] anonymous union { long b; }
            0,
            info(5, 1),
            8,
            14,
            1,
            0,
            // [3] struct outer { long a; union { long b; }; } size 16
            6,
            info(4, 2),
            16,
            12,
            1,
            0,
            0,
            2,
            64,
        ];
        let btf = Btf::parse(blob(&types, strings)).expect("valid BTF");
        assert_eq!(btf.len(), 3);
        assert_eq!(btf.member_offset("outer", "a"), Some(0));
        assert_eq!(btf.member_offset("outer", "b"), Some(8));
        assert_eq!(btf.member_offset("outer", "c"), None);
        assert_eq!(btf.size_of(3), Some(16));
    }

    #[test]
    fn rejects_truncated_and_foreign_data() {
        assert!(matches!(Btf::parse(b"short".to_vec()), Err(BtfError::BadHeader)));
        let mut data = blob(&[1, info(1, 0), 8, 64], b"\0");
        data.truncate(data.len() - 6);
        assert!(matches!(Btf::parse(data), Err(BtfError::Truncated { .. })));
    }
}
