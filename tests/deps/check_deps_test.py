#!/usr/bin/env python3
"""Tests for scripts/check-deps: a tiny fake tree in a temp dir with good and
bad edges, so the checker cannot silently stop checking. Run by ctest as
deps.check_deps_test (tests/CMakeLists.txt); by hand: python3 THIS_FILE."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
CHECKER = os.path.join(SOURCE_DIR, "scripts", "check-deps")

MATRIX = """\
# fake architecture

<!-- deps-matrix:begin -->
| library | directory | CMake targets | may include and link |
|---|---|---|---|
| base | `base/` | `sparetime_base` | — |
| imaging | `imaging/` | `sparetime_imaging` | base |
| cli | `agent/cli/` | `sparetime` | base, imaging |
| tests | `tests/` | — | * |
<!-- deps-matrix:end -->
{exceptions}
"""

EXCEPTIONS = """\
<!-- deps-exceptions:begin -->
| file | may still use | removed by |
|---|---|---|
| {glob} | {lib} | the test |
<!-- deps-exceptions:end -->
"""


class CheckDepsTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="check_deps_test.")
        self.write_matrix()
        self.write("base/CMakeLists.txt", "add_library(sparetime_base STATIC src/fd.cc)\n")
        self.write("base/include/sparetime/base/fd.h", "#pragma once\n")
        self.write("base/src/fd.cc", '#include "sparetime/base/fd.h"\n#include <unistd.h>\n')
        self.write("imaging/CMakeLists.txt", textwrap.dedent("""\
            # imaging: the pipeline (a comment naming sparetime_cli is not a link)
            add_library(sparetime_imaging STATIC src/codec.cc)
            target_link_libraries(sparetime_imaging
              PUBLIC sparetime_base
              PRIVATE PkgConfig::ZSTD)
            """))
        self.write("imaging/include/sparetime/imaging/codec.h",
                   '#pragma once\n#include "sparetime/base/fd.h"\n')
        self.write("imaging/src/codec.cc", '#include "sparetime/imaging/codec.h"\n#include "sysfs.h"\n')
        self.write("imaging/src/sysfs.h", "#pragma once\n")
        self.write("agent/CMakeLists.txt", textwrap.dedent("""\
            add_executable(sparetime cli/main.cc)
            target_link_libraries(sparetime PRIVATE sparetime_imaging sparetime_base CLI11::CLI11)
            """))
        self.write("agent/cli/main.cc", '#include "sparetime/imaging/codec.h"\n'
                   '#include <sparetime/base/fd.h>\nint main() {}\n')
        self.write("tests/CMakeLists.txt", "add_executable(t t.cc)\n"
                   "target_link_libraries(t sparetime_imaging sparetime_base)\n")
        self.write("tests/imaging/codec_test.cc", '#include "../../imaging/src/sysfs.h"\n'
                   '#include "sparetime/imaging/codec.h"\n')
        self.write("build/generated.cc", '#include "sparetime/cli/nothing.h"\n')  # skipped

    def tearDown(self):
        shutil.rmtree(self.root)

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def write_matrix(self, exceptions=""):
        self.write("docs/ARCHITECTURE.md", MATRIX.format(exceptions=exceptions))

    def run_checker(self, *extra):
        p = subprocess.run([sys.executable, CHECKER, "--root", self.root, *extra],
                           capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    def violations(self, out):
        return [l for l in out.splitlines() if not l.startswith(("note:", "edge:"))
                and not l.startswith("check-deps:")]

    def test_good_tree_passes_and_counts_every_edge(self):
        rc, out, err = self.run_checker("--verbose")
        self.assertEqual(rc, 0, out + err)
        edges = sorted(l for l in out.splitlines() if l.startswith("edge:"))
        self.assertEqual(edges, [
            "edge: cli includes base", "edge: cli includes imaging",
            "edge: cli links base", "edge: cli links imaging",
            "edge: imaging includes base", "edge: imaging links base"])
        self.assertIn("check-deps: ok (6 allowed edges between libraries, 4 libraries, "
                      "0 tolerated by exceptions)", out)

    def test_upward_include_fails_naming_file_and_line(self):
        self.write("base/src/fd.cc", '#include "sparetime/base/fd.h"\n\n'
                   '#include "sparetime/imaging/codec.h"\n')
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "base/src/fd.cc:3: base may not include imaging (allowed: nothing)"])

    def test_include_of_an_executable_fails(self):
        self.write("imaging/include/sparetime/imaging/codec.h",
                   '#pragma once\n#include <sparetime/cli/format.h>\n')
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "imaging/include/sparetime/imaging/codec.h:2: imaging may not include cli "
            "(allowed: base)"])

    def test_relative_include_into_another_librarys_src_fails(self):
        self.write("base/src/fd.cc", '#include "../../imaging/src/sysfs.h"\n')
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "base/src/fd.cc:1: base may not include imaging (allowed: nothing)"])

    def test_bad_link_line_fails_at_the_line_of_the_linked_target(self):
        self.write("base/CMakeLists.txt", textwrap.dedent("""\
            add_library(sparetime_base STATIC src/fd.cc)
            target_link_libraries(sparetime_base
              PRIVATE PkgConfig::SQLITE3
                      sparetime_imaging)
            """))
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "base/CMakeLists.txt:4: base may not link imaging (allowed: nothing)"])

    def test_executable_linking_the_other_way_fails(self):
        self.write("imaging/CMakeLists.txt", "add_library(sparetime_imaging STATIC src/codec.cc)\n"
                   "target_link_libraries(sparetime_imaging PUBLIC sparetime_base sparetime)\n")
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "imaging/CMakeLists.txt:2: imaging may not link cli (allowed: base)"])

    def test_library_missing_from_the_matrix_fails(self):
        self.write("agent/ops/CMakeLists.txt", "add_library(sparetime_ops STATIC src/backup.cc)\n"
                   "target_link_libraries(sparetime_ops PUBLIC sparetime_imaging)\n")
        self.write("agent/ops/include/sparetime/ops/backup.h", "#pragma once\n")
        self.write("agent/ops/src/backup.cc", '#include "sparetime/ops/backup.h"\n')
        self.write("agent/cli/main.cc", '#include "sparetime/ops/backup.h"\n')
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(sorted(self.violations(out)), sorted([
            "agent/cli/main.cc:1: cli includes sparetime/ops/backup.h, a library not in the "
            "matrix: add its row to docs/ARCHITECTURE.md",
            "agent/ops/CMakeLists.txt:1: target sparetime_ops belongs to no library in the "
            "matrix: name it in a row of docs/ARCHITECTURE.md",
            "agent/ops/include/sparetime/ops/backup.h:1: belongs to no library in the matrix: "
            "add a row for its directory to docs/ARCHITECTURE.md",
            "agent/ops/include/sparetime/ops/backup.h:1: header directory include/sparetime/ops/ "
            "belongs to no library in the matrix: add a row for ops to docs/ARCHITECTURE.md",
            "agent/ops/src/backup.cc:1: belongs to no library in the matrix: add a row for its "
            "directory to docs/ARCHITECTURE.md"]))

    def test_link_to_an_unknown_project_target_fails(self):
        self.write("agent/CMakeLists.txt", "add_executable(sparetime cli/main.cc)\n"
                   "target_link_libraries(sparetime PRIVATE sparetime_imaging sparetime_zap)\n")
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "agent/CMakeLists.txt:2: cli links sparetime_zap, a target no row of "
            "docs/ARCHITECTURE.md names: add it to the matrix"])

    def test_exception_tolerates_its_edge_and_strict_does_not(self):
        self.write("base/src/fd.cc", '#include "sparetime/imaging/codec.h"\n')
        self.write_matrix(EXCEPTIONS.format(glob="`base/src/fd.*`", lib="imaging"))
        rc, out, err = self.run_checker()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("note: base/src/fd.cc:1: base includes imaging: tolerated", out)
        self.assertIn("1 tolerated by exceptions", out)
        rc, out, _ = self.run_checker("--strict")
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "base/src/fd.cc:1: base may not include imaging (allowed: nothing)"])

    def test_exception_for_another_library_does_not_tolerate(self):
        self.write("base/src/fd.cc", '#include "sparetime/cli/x.h"\n#include "sparetime/imaging/codec.h"\n')
        self.write_matrix(EXCEPTIONS.format(glob="`base/src/fd.*`", lib="imaging"))
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "base/src/fd.cc:1: base may not include cli (allowed: nothing)"])

    def test_stale_exception_fails(self):
        self.write_matrix(EXCEPTIONS.format(glob="`base/src/fd.*`", lib="imaging"))
        rc, out, _ = self.run_checker()
        self.assertEqual(rc, 1)
        self.assertEqual(self.violations(out), [
            "docs/ARCHITECTURE.md:14: the exception for base/src/fd.* -> imaging matches no "
            "edge any more: delete its row"])

    def test_cycle_in_the_matrix_is_refused(self):
        self.write("docs/ARCHITECTURE.md", MATRIX.format(exceptions="").replace(
            "| base | `base/` | `sparetime_base` | — |", "| base | `base/` | `sparetime_base` | cli |"))
        rc, _, err = self.run_checker()
        self.assertEqual(rc, 2)
        self.assertIn("the matrix has a cycle: base -> cli -> base", err)

    def test_missing_matrix_is_refused(self):
        self.write("docs/ARCHITECTURE.md", "# no table here\n")
        rc, _, err = self.run_checker()
        self.assertEqual(rc, 2)
        self.assertIn("no table between '<!-- deps-matrix:begin'", err)


class RealTreeTest(unittest.TestCase):
    """The real tree's scan still sees the edges every later state keeps."""

    def test_real_tree_edges_are_found(self):
        p = subprocess.run([sys.executable, CHECKER, "--root", SOURCE_DIR, "--verbose"],
                           capture_output=True, text=True)
        edges = set(l for l in p.stdout.splitlines() if l.startswith("edge:"))
        for e in ["edge: imaging includes crypto", "edge: imaging links crypto",
                  "edge: transport includes crypto", "edge: peer links transport",
                  "edge: cli includes imaging", "edge: daemon links ops",
                  "edge: replication includes peer", "edge: crypto links base"]:
            self.assertIn(e, edges)
        self.assertGreater(len(edges), 60)


if __name__ == "__main__":
    unittest.main(verbosity=2)
