#!/usr/bin/env python3
"""Tests of scripts/module-cycles.py on small crates written to a temporary
folder: each case is a set of files, the edges the checker must find (and
must not find), and its exit status.

    python3 scripts/module-cycles-test.py
"""

import contextlib
import importlib.util
import io
import os
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location("module_cycles", os.path.join(HERE, "module-cycles.py"))
mc = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mc)


class Crate:
    """A crate's src folder in a temporary directory."""

    def __init__(self, files):
        self.dir = tempfile.TemporaryDirectory()
        self.src = os.path.join(self.dir.name, "src")
        files = dict(files)
        files.setdefault("lib.rs", "")
        for rel, text in files.items():
            path = os.path.join(self.src, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(text))

    def edges(self, nested=False):
        crate = mc.Crate(self.src, nested)
        return {(mc.name(a), mc.name(b)) for a, b in crate.edges()}

    def run(self, *args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = mc.main([*args, self.src])
        return rc, out.getvalue()

    def close(self):
        self.dir.cleanup()


class ModuleCycles(unittest.TestCase):
    def crate(self, files):
        c = Crate(files)
        self.addCleanup(c.close)
        return c

    def test_use_trees_and_paths_in_code_are_edges(self):
        c = self.crate(
            {
                "a.rs": """
                    use crate::{b::X, c::{self, Y as Z}};
                    fn f() { crate::d::g(); let _ = <crate::e::T as Default>::default(); }
                """,
                "b.rs": "",
                "c.rs": "",
                "d.rs": "",
                "e.rs": "",
            }
        )
        self.assertEqual(c.edges(), {("a", "b"), ("a", "c"), ("a", "d"), ("a", "e")})

    def test_a_cycle_is_printed_with_its_references_and_exits_1(self):
        c = self.crate(
            {
                "a.rs": "use crate::b::B;\npub struct A;\n",
                "b.rs": "pub struct B;\nfn f(_: crate::a::A) {}\n",
                "c.rs": "use crate::a::A;\n",
            }
        )
        rc, out = c.run()
        self.assertEqual(rc, 1)
        self.assertIn("cycle group 1: 2 modules: a b", out)
        self.assertIn("    a -> b -> a\n", out)
        self.assertIn("a.rs:1: crate::b::B", out)
        self.assertIn("b.rs:2: crate::a::A", out)
        self.assertNotIn(" c ", out.split("cycle group 1")[1].splitlines()[0] + " ")

    def test_no_cycle_exits_0(self):
        c = self.crate({"a.rs": "use crate::b::B;\n", "b.rs": "use crate::c::C;\n", "c.rs": ""})
        rc, out = c.run()
        self.assertEqual(rc, 0)
        self.assertIn("no import cycle", out)

    def test_every_elementary_cycle_of_a_group_is_listed(self):
        c = self.crate(
            {
                "a.rs": "use crate::b::X; use crate::c::Y;\n",
                "b.rs": "use crate::a::X; use crate::c::Y;\n",
                "c.rs": "use crate::a::X;\n",
            }
        )
        rc, out = c.run()
        self.assertEqual(rc, 1)
        for cycle in ("a -> b -> a", "a -> c -> a", "a -> b -> c -> a"):
            self.assertIn("    " + cycle + "\n", out)
        self.assertIn("3 elementary cycles", out)

    def test_comments_strings_and_doc_links_are_ignored(self):
        c = self.crate(
            {
                "a.rs": r'''
                    //! See [`crate::b::X`].
                    // use crate::b::X;
                    /* outer /* nested crate::b::X */ still crate::b::X */
                    /// [`X`](crate::b::X)
                    fn f<'a>(s: &'a str) -> (char, char, &'static str) {
                        let _ = "use crate::b::X; \" crate::b::X";
                        let _ = r#"crate::b::X "quoted" "#;
                        let _ = b"crate::b::X";
                        ('"', '\'', "x")
                    }
                    use crate::c::Y;
                ''',
                "b.rs": "",
                "c.rs": "",
            }
        )
        self.assertEqual(c.edges(), {("a", "c")})

    def test_cfg_test_items_are_ignored_but_cfg_not_test_is_not(self):
        c = self.crate(
            {
                "a.rs": """
                    #[cfg(test)]
                    use crate::b::X;
                    #[cfg(test)]
                    fn helper() -> crate::b::X { todo!() }
                    #[cfg(all(test, feature = "x"))]
                    mod more { use crate::b::Y; }
                    #[cfg(not(test))]
                    use crate::c::Z;

                    #[cfg(test)]
                    mod tests {
                        use super::*;
                        use crate::b::{X, Y};
                        #[test]
                        fn t() { let v = [0u8; 4]; crate::b::f(&v); }
                    }
                    fn after() { crate::d::g(); }
                """,
                "b.rs": "",
                "c.rs": "",
                "d.rs": "",
            }
        )
        self.assertEqual(c.edges(), {("a", "c"), ("a", "d")})

    def test_an_out_of_line_test_module_file_is_skipped(self):
        c = self.crate(
            {
                "a/mod.rs": "#[cfg(test)]\nmod tests;\nmod inner;\n",
                "a/tests.rs": "use crate::b::X;\n",
                "a/inner.rs": "use crate::c::Y;\n",
                "b.rs": "use crate::a::A;\n",
                "c.rs": "",
            }
        )
        self.assertEqual(c.edges(), {("a", "c"), ("b", "a")})
        self.assertEqual(c.run()[0], 0)

    def test_super_resolves_against_the_files_module_and_inline_modules(self):
        c = self.crate(
            {
                "a.rs": """
                    use super::b::X;
                    mod inner {
                        use super::super::c::Y;
                        use super::Local;
                    }
                    pub struct Local;
                """,
                "b.rs": "",
                "c.rs": "",
                "d/mod.rs": "use super::e::E;\nmod x;\n",
                "d/x.rs": "use super::super::f::F;\nuse super::Thing;\n",
                "e.rs": "",
                "f.rs": "",
            }
        )
        self.assertEqual(
            c.edges(), {("a", "b"), ("a", "c"), ("d", "e"), ("d", "f")}
        )

    def test_root_reexports_and_globs_lead_to_the_defining_module(self):
        c = self.crate(
            {
                "lib.rs": """
                    pub mod a; pub mod b; pub mod c; pub mod d;
                    pub use b::Named;
                    pub use c::*;
                    pub use std::collections::HashMap;
                    pub struct AtRoot;
                """,
                "a.rs": """
                    use crate::Named;
                    use crate::{FromGlob, AtRoot, HashMap};
                    fn f() -> crate::Named { todo!() }
                """,
                "b.rs": "pub struct Named;\n",
                "c.rs": "pub enum FromGlob {}\npub(crate) fn helper() {}\n",
                "d.rs": "",
            }
        )
        self.assertEqual(c.edges(), {("a", "b"), ("a", "c")})

    def test_visibility_restrictions_are_no_references(self):
        c = self.crate(
            {
                "a/mod.rs": "mod x;\n",
                "a/x.rs": "pub(in crate::a) fn f() {}\npub(crate) fn g() {}\npub(super) fn h() {}\n",
                "b.rs": "",
            }
        )
        self.assertEqual(c.edges(), set())

    def test_macro_crate_paths_count(self):
        c = self.crate(
            {
                "a.rs": "macro_rules! m { () => { $crate::b::f() }; }\n",
                "b.rs": "",
            }
        )
        self.assertEqual(c.edges(), {("a", "b")})

    def test_nested_modules_are_nodes_with_the_flag_only(self):
        files = {
            "io/mod.rs": "mod memory;\npub use memory::MemoryQueue;\npub struct Disposition;\n",
            "io/memory.rs": "use super::Disposition;\nuse crate::worker::Processor;\npub struct MemoryQueue;\n",
            "worker.rs": "use crate::io::Disposition;\npub trait Processor {}\n",
            "cli.rs": "use crate::io::MemoryQueue;\n",
        }
        c = self.crate(files)
        self.assertEqual(c.edges(), {("io", "worker"), ("worker", "io"), ("cli", "io")})
        rc, out = c.run()
        self.assertEqual(rc, 1)
        self.assertIn("io -> worker -> io", out)
        # nested: the facade `pub use memory::MemoryQueue` is no edge, and
        # cli's use of it goes to io/memory, which defines it
        self.assertEqual(
            c.edges(nested=True),
            {
                ("io/memory", "io"),
                ("io/memory", "worker"),
                ("worker", "io"),
                ("cli", "io/memory"),
            },
        )
        rc, out = c.run("--nested")
        self.assertEqual(rc, 0, out)

    def test_a_parent_using_a_childs_items_in_code_is_a_cycle_when_nested(self):
        c = self.crate(
            {
                "wire/mod.rs": "mod parse;\npub type Result = ();\nfn f() { parse::run(); }\n",
                "wire/parse.rs": "use super::Result;\npub fn run() {}\n",
            }
        )
        self.assertEqual(c.run()[0], 0)
        rc, out = c.run("--nested")
        self.assertEqual(rc, 1)
        self.assertIn("wire -> wire/parse -> wire", out)
        self.assertIn("wire/mod.rs:3: parse::run", out)

    def test_usage_errors_exit_2(self):
        with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()):
            mc.main(["/nonexistent/src"])
        self.assertEqual(e.exception.code, 2)


if __name__ == "__main__":
    unittest.main()
