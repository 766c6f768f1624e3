#!/usr/bin/env python3
"""Tests for scripts/check-thread-safety: a fake tree whose
compile_commands.json (g++ style, with g++-only and sanitizer flags) lists a
clean unit and, in some tests, one that touches GUARDED_BY state without its
lock — over the real base/include/sparetime/base/mutex.h, so the check fails
if the annotations there stop expanding under clang. Run by ctest as
deps.check_thread_safety_test."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
CHECKER = os.path.join(SOURCE_DIR, "scripts", "check-thread-safety")
BASE_INCLUDE = os.path.join(SOURCE_DIR, "base", "include")

COUNTER = """\
#include "sparetime/base/mutex.h"

namespace sparetime {{
class Counter {{
 public:
  void Bump() EXCLUDES(mu_) {{
    {lock}
    ++n_;
  }}
  int Get() EXCLUDES(mu_) {{
    MutexLock l(mu_);
    return n_;
  }}
 private:
  Mutex mu_;
  int n_ GUARDED_BY(mu_) = 0;
}};
int Use() {{
  Counter c;
  c.Bump();
  return c.Get();
}}
}}  // namespace sparetime
"""

PLAIN_STD_MUTEX = """\
#include <mutex>
namespace sparetime {
class Plain {
 public:
  void Bump() { ++n_; }  // unannotated std::mutex: clang has nothing to check
 private:
  std::mutex mu_;
  int n_ = 0;
};
int UsePlain() { Plain p; p.Bump(); return 0; }
}  // namespace sparetime
"""


class CheckThreadSafetyTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="check_tsa_test.")
        os.makedirs(os.path.join(self.root, "src"))
        os.makedirs(os.path.join(self.root, "build"))
        self.units = []

    def tearDown(self):
        shutil.rmtree(self.root)

    def add_unit(self, name, text, depfile=None):
        path = os.path.join(self.root, "src", name)
        with open(path, "w") as f:
            f.write(text)
        # What g++'s compile_commands.json holds, sanitizer flags included.
        command = (f"/usr/bin/c++ -I{BASE_INCLUDE} -O2 -g -DNDEBUG -Wall -Wextra -Werror "
                   "-fsanitize=address,undefined -fno-sanitize-recover=all "
                   f"-fno-omit-frame-pointer -std=c++20 -o CMakeFiles/x.dir/{name}.o -c {path}")
        if depfile is not None:  # what g++ -MD writes beside the object
            obj_dir = os.path.join(self.root, "build", "CMakeFiles", "x.dir")
            os.makedirs(obj_dir, exist_ok=True)
            with open(os.path.join(obj_dir, name + ".o.d"), "w") as f:
                f.write(f"CMakeFiles/x.dir/{name}.o: {path} " + " ".join(depfile) + "\n")
        self.units.append({"directory": os.path.join(self.root, "build"),
                           "command": command, "file": path})
        with open(os.path.join(self.root, "build", "compile_commands.json"), "w") as f:
            json.dump(self.units, f)

    def run_checker(self):
        p = subprocess.run([sys.executable, CHECKER, "--root", self.root, "-j", "2"],
                           capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    def test_clean_units_pass(self):
        self.add_unit("counter.cc", COUNTER.format(lock="MutexLock l(mu_);"))
        self.add_unit("plain.cc", PLAIN_STD_MUTEX)
        rc, out, err = self.run_checker()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("check-thread-safety: 2 translation units clean", out)

    def test_unlocked_access_to_guarded_state_fails(self):
        self.add_unit("plain.cc", PLAIN_STD_MUTEX)
        self.add_unit("counter.cc", COUNTER.format(lock="// no lock"))
        rc, out, err = self.run_checker()
        self.assertEqual(rc, 1, out + err)
        self.assertIn("=== src/counter.cc: clang -Wthread-safety failed", out)
        self.assertIn("counter.cc:8:7: error: writing variable 'n_' requires holding mutex "
                      "'mu_' exclusively [-Werror,-Wthread-safety-analysis]", out)
        self.assertNotIn("plain.cc", out)
        self.assertIn("1 of 2 translation units failed", err)

    def test_units_whose_depfile_lacks_mutex_h_are_skipped(self):
        mutex_h = os.path.join(BASE_INCLUDE, "sparetime", "base", "mutex.h")
        # A violation in a unit whose dependency file names mutex.h is still found...
        self.add_unit("counter.cc", COUNTER.format(lock="// no lock"), depfile=[mutex_h])
        # ...a unit whose dependency file does not name it is not compiled at all (it is
        # not even valid C++, so compiling it would fail)...
        self.add_unit("plain.cc", "this is not C++\n", depfile=["/usr/include/c++/12/mutex"])
        rc, out, err = self.run_checker()
        self.assertEqual(rc, 1, out + err)
        self.assertIn("=== src/counter.cc: clang -Wthread-safety failed", out)
        self.assertNotIn("plain.cc", out + err)
        self.assertIn("1 of 1 translation units failed", err)
        # ...and --all compiles it.
        p = subprocess.run([sys.executable, CHECKER, "--root", self.root, "-j", "2", "--all"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("=== src/plain.cc", p.stdout)

    def test_missing_compile_commands_is_refused(self):
        rc, _, err = self.run_checker()
        self.assertEqual(rc, 2)
        self.assertIn("compile_commands.json is missing: run scripts/build first", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
