//! Offsets discovered from this kernel's BTF by oomtrace's own reader, cross-
//! checked with `bpftool btf dump` (an independent BTF implementation).

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, ExitCode},
};

use anyhow::Result;
use oomtrace::kernel::{self, btf::Btf};
use oomtrace_common::{KernelLayout, layout::Lookup};
use oomtrace_testkit::{
    harness::{self, Need},
    trial,
};

fn main() -> ExitCode {
    harness::main(vec![
        trial!(btf_offsets_agree_with_bpftool, Need::KernelBtf),
        trial!(every_offset_the_programs_need_resolves_on_this_kernel, Need::KernelBtf),
    ])
}

/// One type of `bpftool btf dump ... format raw`.
#[derive(Debug, Default)]
struct DumpedType {
    kind: String,
    name: String,
    /// (name, type id, bit offset)
    members: Vec<(String, u32, u32)>,
    /// For typedefs/qualifiers: the target type id.
    target: Option<u32>,
}

fn parse_dump(text: &str) -> HashMap<u32, DumpedType> {
    let mut types = HashMap::new();
    let mut current: Option<u32> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            let (id, rest) = rest.split_once("] ").expect("type line");
            let id: u32 = id.parse().expect("type id");
            let mut words = rest.split_whitespace();
            let kind = words.next().unwrap_or_default().to_owned();
            let name = words.next().unwrap_or_default().trim_matches('\'').to_owned();
            let target = rest.split_whitespace().find_map(|w| w.strip_prefix("type_id=")).and_then(|v| v.parse().ok());
            types.insert(id, DumpedType { kind, name, members: Vec::new(), target });
            current = Some(id);
        } else if let (Some(id), Some(rest)) = (current, line.strip_prefix('\t')) {
            let name = rest.split('\'').nth(1).unwrap_or_default().to_owned();
            let field = |key: &str| {
                rest.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse::<u32>().ok())
            };
            if let (Some(type_id), Some(bits)) = (field("type_id="), field("bits_offset=")) {
                types.get_mut(&id).expect("current type").members.push((name, type_id, bits));
            }
        }
    }
    types
}

fn resolve(types: &HashMap<u32, DumpedType>, mut id: u32) -> u32 {
    while let Some(t) = types.get(&id) {
        match (t.kind.as_str(), t.target) {
            ("TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG", Some(next)) => id = next,
            _ => break,
        }
    }
    id
}

fn member_bits(types: &HashMap<u32, DumpedType>, id: u32, field: &str) -> Option<u32> {
    let t = types.get(&resolve(types, id))?;
    if let Some((_, _, bits)) = t.members.iter().find(|(n, _, _)| n == field) {
        return Some(*bits);
    }
    t.members
        .iter()
        .filter(|(n, _, _)| n == "(anon)")
        .find_map(|(_, ty, bits)| member_bits(types, *ty, field).map(|inner| bits + inner))
}

fn bpftool_offset(types: &HashMap<u32, DumpedType>, strukt: &str, field: &str) -> Option<u32> {
    let id = types.iter().find(|(_, t)| t.kind == "STRUCT" && t.name == strukt).map(|(id, _)| *id)?;
    member_bits(types, id, field).map(|bits| bits / 8)
}

/// Struct members the computed layout entries read (`kernel::layout`'s rss
/// counter layout); the other members come from the layout table itself.
const COMPUTED_FROM: &[(&str, &str)] = &[("mm_struct", "rss_stat"), ("percpu_counter", "count")];

/// Every struct member oomtrace reads in the kernel, with its alternative
/// names (the first the kernel has is read).
fn members() -> Vec<(&'static str, &'static [&'static str])> {
    let declared = KernelLayout::ENTRIES.iter().filter_map(|entry| match entry.lookup {
        Lookup::Member { strukt, members } => Some((strukt, members)),
        _ => None,
    });
    let computed = COMPUTED_FROM.iter().map(|(strukt, member)| (*strukt, std::slice::from_ref(member)));
    declared.chain(computed).collect()
}

fn btf_offsets_agree_with_bpftool() -> Result<()> {
    let vmlinux = Path::new(kernel::btf::VMLINUX_BTF);
    let dump = match Command::new("bpftool").args(["btf", "dump", "file"]).arg(vmlinux).args(["format", "raw"]).output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!("bpftool failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => panic!("bpftool is required for this test (apt-get install bpftool): {e}"),
    };
    let theirs = parse_dump(&dump);
    let ours = Btf::from_sys_fs().expect("read BTF");
    let members = members();
    let mut compared = 0;
    for (strukt, names) in &members {
        for field in names.iter() {
            let expected = bpftool_offset(&theirs, strukt, field);
            assert_eq!(ours.member_offset(strukt, field), expected, "{strukt}.{field}");
        }
        if names.len() > 1 {
            // A renamed member (kernfs_node.parent became __parent in 6.15):
            // exactly one of the names exists.
            let found = names.iter().filter(|field| bpftool_offset(&theirs, strukt, field).is_some()).count();
            assert_eq!(found, 1, "{strukt} has exactly one of {names:?}");
        }
        let expected = names.iter().find_map(|field| bpftool_offset(&theirs, strukt, field));
        assert_eq!(names.iter().find_map(|field| ours.member_offset(strukt, field)), expected, "{strukt}.{names:?}");
        compared += expected.is_some() as usize;
    }
    assert!(compared >= members.len() - 2, "only {compared} of {} members exist on this kernel", members.len());
    Ok(())
}

fn every_offset_the_programs_need_resolves_on_this_kernel() -> Result<()> {
    let facts = kernel::discover();
    let missing = facts.layout.missing();
    // signal_generate's format needs tracefs, which needs root to mount.
    let missing: Vec<_> = missing.into_iter().filter(|m| !m.starts_with("signal_generate")).collect();
    assert!(missing.is_empty(), "unresolved on this kernel: {missing:?}");
    Ok(())
}
