"""Compile-time guarantees of the public API: runs the C++ compiler on
tests/unit/compile/var_cases.cc once per case. CASE_GOOD (the documented
patterns) must compile; each other case must fail, with its expected message,
so that `auto x = s.var(...)` (a silent copy) can never compile again.

  compile_test.py CXX INCLUDE_DIR"""
import concurrent.futures
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "compile", "var_cases.cc")

# The deleted copy constructor's line, which the compiler quotes in its note
# (gcc: "use of deleted function", clang: "call to deleted constructor").
COPY = ("deleted", "hold it as `auto& x = s.var(...)`")
# case -> texts the compiler's errors must contain (None: must compile)
CASES = {
    "GOOD": None,
    "COPY_NUMBER": COPY,
    "COPY_CLASS": COPY,
    "MOVE": COPY,
    "COPY_EXPLICIT_TYPE": COPY,
    "DISCRETE_DISTRIBUTION": ("discrete_distribution cannot be registered",),
    "LONG_DOUBLE_DISTRIBUTION": ("long double has no portable representation",),
    "STEADY_TIME_POINT": ("only std::chrono::system_clock time points can be checkpointed",),
}


def compile_case(cxx, include, case):
    cmd = [cxx, "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-I", include, "-DCASE_" + case, SOURCE]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return case, p.returncode, p.stderr


def main():
    cxx, include = sys.argv[1], sys.argv[2]
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for case, rc, err in pool.map(lambda c: compile_case(cxx, include, c), CASES):
            want = CASES[case]
            if want is None and (rc != 0 or "warning" in err):
                failures.append("%s must compile cleanly:\n%s" % (case, err[-4000:]))
            elif want is not None and rc == 0:
                failures.append("%s compiled, but must not (%s)" % (case, want))
            elif want is not None and not all(w in err for w in want):
                failures.append("%s failed without %s:\n%s" % (case, want, err[-4000:]))
            else:
                print("ok   %s" % case)
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
