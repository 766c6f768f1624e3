#!/usr/bin/env python3
"""The clang sanitizer build enforces the thread-safety analysis by itself.

Run by ctest as deps.sanitize_build_thread_safety, registered only in the clang
sanitizer build (scripts/build --sanitize). Usage:
  sanitize_thread_safety_test.py CXX OPTION...
CXX and OPTIONs are that build's compiler and the compile options every project
target gets (tests/CMakeLists.txt passes sparetime_base's COMPILE_OPTIONS).

Why it exists: CI (.ci/run) skips scripts/check-thread-safety in its plain step
(SPARETIME_SKIP_THREAD_SAFETY=1) because its next step, the clang ASan build,
compiles every unit with -Wthread-safety under -Werror. This test fails if
that build stops doing so: with the build's own options, the unit that writes
GUARDED_BY state without its lock must be refused with clang's thread-safety
error, and the same unit with the lock must compile."""

import os
import subprocess
import sys
import tempfile
import unittest

from check_thread_safety_test import BASE_INCLUDE, COUNTER

CXX = None
OPTIONS = []


def compile_unit(text):
    with tempfile.TemporaryDirectory(prefix="sanitize_tsa_test.") as tmp:
        src = os.path.join(tmp, "counter.cc")
        with open(src, "w") as f:
            f.write(text)
        p = subprocess.run([CXX, *OPTIONS, f"-I{BASE_INCLUDE}", "-std=c++20", "-fsyntax-only", src],
                           capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr


class SanitizeBuildThreadSafetyTest(unittest.TestCase):
    def test_options_hold_the_analysis_as_an_error(self):
        self.assertIn("-Wthread-safety", OPTIONS)
        self.assertIn("-Werror", OPTIONS)

    def test_locked_access_compiles(self):
        rc, out = compile_unit(COUNTER.format(lock="MutexLock l(mu_);"))
        self.assertEqual(rc, 0, out)
        self.assertEqual(out, "")

    def test_unlocked_access_to_guarded_state_fails_the_build(self):
        rc, out = compile_unit(COUNTER.format(lock="// no lock"))
        self.assertEqual(rc, 1, out)
        self.assertIn("counter.cc:8:7: error: writing variable 'n_' requires holding mutex "
                      "'mu_' exclusively [-Werror,-Wthread-safety-analysis]", out)
        self.assertIn("1 error generated.", out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print("usage: sanitize_thread_safety_test.py CXX OPTION...", file=sys.stderr)
        sys.exit(2)
    CXX, OPTIONS = sys.argv[1], sys.argv[2:]
    unittest.main(argv=[sys.argv[0]], verbosity=2)
