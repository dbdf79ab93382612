//! The prebuilt eBPF object's programs as the verifier will be handed them,
//! read without loading: instructions (with the `.text` subprograms the
//! loader appends) and stack, against the limits every kernel enforces.
//! Loading them on 5.10 (`cargo xtask vm-test`) is the real check; this says
//! how close the code is to those limits, from any host.

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
};

use anyhow::{Context as _, Result};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget, SymbolKind};

use crate::bench::figures::ObjectProgram;

/// The verifier rounds each frame of a call chain up to this (kernel/bpf/verifier.c,
/// check_max_stack_depth).
const FRAME_ROUNDING: u32 = 32;
const INSN_BYTES: usize = 8;
/// `BPF_JMP | BPF_CALL`; with src_reg 1 (`BPF_PSEUDO_CALL`) a bpf-to-bpf call.
const CALL: u8 = 0x85;
const PSEUDO_CALL: u8 = 1;
/// `BPF_LD | BPF_IMM | BPF_DW`: a 64-bit immediate in two slots.
const LD_IMM64: u8 = 0x18;
const FRAME_POINTER: usize = 10;

/// One function of the object: where its code is and whom it calls.
struct Function {
    section: String,
    code: Vec<u8>,
    callees: Vec<String>,
}

/// Every program (a function outside `.text`) of the object at `path`.
pub fn programs(path: &Path) -> Result<Vec<ObjectProgram>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let mut functions = HashMap::new();
    for symbol in file.symbols().filter(|s| s.kind() == SymbolKind::Text && s.size() > 0) {
        let (Ok(name), Some(index)) = (symbol.name(), symbol.section_index()) else { continue };
        let section = file.section_by_index(index)?;
        let section_data = section.data()?;
        let start = symbol.address() as usize;
        let code = section_data
            .get(start..start + symbol.size() as usize)
            .with_context(|| format!("{name} lies outside its section"))?
            .to_vec();
        let callees: Vec<String> = section
            .relocations()
            .filter(|(offset, _)| (start..start + code.len()).contains(&(*offset as usize)))
            .filter(|(offset, _)| is_pseudo_call(&code[*offset as usize - start..]))
            .filter_map(|(_, relocation)| match relocation.target() {
                RelocationTarget::Symbol(index) => file.symbol_by_index(index).ok()?.name().ok().map(str::to_owned),
                _ => None,
            })
            .collect();
        functions.insert(name.to_owned(), Function { section: section.name()?.to_owned(), code, callees });
    }
    let mut programs: Vec<ObjectProgram> = functions
        .iter()
        .filter(|(_, f)| f.section != ".text")
        .map(|(name, f)| {
            let subprograms = reachable(&functions, name);
            let insns = std::iter::once(name)
                .chain(&subprograms)
                .filter_map(|n| functions.get(n))
                .map(|f| (f.code.len() / INSN_BYTES) as u32)
                .sum();
            ObjectProgram {
                name: name.clone(),
                section: f.section.clone(),
                insns,
                subprograms: subprograms.into_iter().collect(),
                frame_bytes: frame_bytes(&f.code),
                stack_bytes: chain_stack_bytes(&functions, name, 0),
            }
        })
        .collect();
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(programs)
}

fn is_pseudo_call(insn: &[u8]) -> bool {
    insn.len() >= 2 && insn[0] == CALL && insn[1] >> 4 == PSEUDO_CALL
}

/// The functions `name` calls, directly or not.
fn reachable(functions: &HashMap<String, Function>, name: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![name.to_owned()];
    while let Some(next) = todo.pop() {
        for callee in functions.get(&next).map_or(&[][..], |f| f.callees.as_slice()) {
            if callee != name && found.insert(callee.clone()) {
                todo.push(callee.clone());
            }
        }
    }
    found
}

/// The stack of `name`'s deepest call chain as the verifier adds it up (BPF
/// has no recursion; `depth` only guards against a malformed object).
fn chain_stack_bytes(functions: &HashMap<String, Function>, name: &str, depth: usize) -> u32 {
    let Some(function) = functions.get(name).filter(|_| depth < 8) else { return 0 };
    let own = frame_bytes(&function.code).max(1).div_ceil(FRAME_ROUNDING) * FRAME_ROUNDING;
    own + function.callees.iter().map(|c| chain_stack_bytes(functions, c, depth + 1)).max().unwrap_or(0)
}

/// The deepest byte below the frame pointer (r10) that `code` addresses:
/// loads and stores through r10, or through a register set to r10 plus a
/// constant (how a pointer to a stack buffer is passed to a helper).
fn frame_bytes(code: &[u8]) -> u32 {
    let mut stack_offset: [Option<i64>; 11] = [None; 11];
    stack_offset[FRAME_POINTER] = Some(0);
    let mut deepest: i64 = 0;
    let mut slots = code.chunks_exact(INSN_BYTES);
    while let Some(insn) = slots.next() {
        let opcode = insn[0];
        let dst = usize::from(insn[1] & 0x0f).min(FRAME_POINTER);
        let src = usize::from(insn[1] >> 4).min(FRAME_POINTER);
        let offset = i64::from(i16::from_le_bytes([insn[2], insn[3]]));
        let imm = i64::from(i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]));
        let mut reach = |base: Option<i64>, plus: i64| {
            if let Some(base) = base {
                deepest = deepest.max(-(base + plus));
            }
        };
        match opcode & 0x07 {
            // LDX: dst = *(src + off)
            0x01 => {
                reach(stack_offset[src], offset);
                stack_offset[dst] = None;
            }
            // ST, STX: *(dst + off) = ...
            0x02 | 0x03 => reach(stack_offset[dst], offset),
            // ALU64: follow `dst = src` and `dst += imm` on stack pointers.
            0x07 if dst != FRAME_POINTER => {
                stack_offset[dst] = match (opcode & 0xf0, opcode & 0x08 != 0) {
                    (0xb0, true) => stack_offset[src],
                    (0x00, false) => stack_offset[dst].map(|base| base + imm),
                    (0x10, false) => stack_offset[dst].map(|base| base - imm),
                    _ => None,
                };
                reach(stack_offset[dst], 0);
            }
            0x05 if opcode == CALL => stack_offset[..6].fill(None),
            // LD (64-bit immediates take the next slot too) and 32-bit ALU.
            0x00 | 0x04 => {
                if opcode == LD_IMM64 {
                    slots.next();
                }
                stack_offset[dst] = None;
            }
            _ => {}
        }
    }
    deepest.max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(opcode: u8, dst: u8, src: u8, offset: i16, imm: i32) -> Vec<u8> {
        let mut bytes = vec![opcode, src << 4 | dst];
        bytes.extend(offset.to_le_bytes());
        bytes.extend(imm.to_le_bytes());
        bytes
    }

    #[test]
    fn the_frame_is_the_deepest_stack_byte_addressed() {
        let code = [
            insn(0x7b, 10, 1, -32, 0),  // *(u64 *)(r10 - 32) = r1
            insn(0x79, 3, 10, -48, 0),  // r3 = *(u64 *)(r10 - 48)
            insn(0xbf, 2, 10, 0, 0),    // r2 = r10
            insn(0x07, 2, 0, 0, -136),  // r2 += -136
            insn(0x18, 1, 0, 0, -4096), // r1 = 64-bit immediate (two slots)
            insn(0, 0, 0, 0, -9999),
            insn(0x85, 0, 0, 0, 113), // call bpf_probe_read_kernel
            insn(0x7b, 2, 1, -8, 0),  // r2 was clobbered by the call: not the stack any more
            insn(0x95, 0, 0, 0, 0),   // exit
        ]
        .concat();
        assert_eq!(frame_bytes(&code), 136);
        assert_eq!(frame_bytes(&insn(0x95, 0, 0, 0, 0)), 0);
    }

    #[test]
    fn a_chain_adds_rounded_frames() {
        let function = |code: Vec<u8>, callees: &[&str]| Function {
            section: "tracepoint".to_owned(),
            code,
            callees: callees.iter().map(|c| c.to_string()).collect(),
        };
        let functions = HashMap::from([
            ("prog".to_owned(), function(insn(0x7b, 10, 1, -40, 0), &["memset"])),
            ("memset".to_owned(), function(insn(0x95, 0, 0, 0, 0), &[])),
        ]);
        assert_eq!(chain_stack_bytes(&functions, "prog", 0), 64 + 32);
        assert_eq!(reachable(&functions, "prog"), BTreeSet::from(["memset".to_owned()]));
        assert!(is_pseudo_call(&insn(0x85, 0, 1, 0, -1)));
        assert!(!is_pseudo_call(&insn(0x85, 0, 0, 0, 113)));
    }

    #[test]
    fn reads_the_prebuilt_object() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let programs = programs(&root.join(crate::ebpf_object::PREBUILT)).unwrap();
        let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"signal_generate"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("mark_victim")), "{names:?}");
        for program in &programs {
            assert!(program.insns > 0 && program.stack_bytes >= program.frame_bytes, "{program:?}");
        }
    }
}
