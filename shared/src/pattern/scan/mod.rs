//! Reading an event: one pass over its JSON bytes that keeps only the parts
//! on a path some pattern names. This module owns the three pieces of that
//! read and how they fit together:
//!
//! - [`trie`]: the field paths the patterns of a set name (what to keep);
//! - [`doc`]: the kept parts of one event, as a small tree (for array
//!   element consistency) and, per path, the list of its scalar values (for
//!   the automaton);
//! - [`scanner`]: the JSON reader that fills the doc, validating everything
//!   and skipping what no pattern names without decoding it.

mod doc;
mod scanner;
mod trie;

pub(crate) use doc::{Doc, Kind, ROOT};
pub(crate) use scanner::scan;
pub(crate) use trie::PathTrie;

/// "No node" in the trie's and the doc's `u32` links.
pub(crate) const NONE: u32 = u32::MAX;
