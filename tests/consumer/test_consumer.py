#!/usr/bin/env python3
"""libckpt as a user's project sees it (ctest label `consumer`).

ckpt is installed from this build into a fresh prefix (`cmake --install`);
tests/consumer/project — a C++17 project of a user's — is built outside the
tree against it, with find_package(ckpt) and with pkg-config, in C++ and in
C, against libckpt.a, libckpt.so and with libckpt.a inside the user's own
shared object. Each program runs three ways — uninterrupted, checkpointed
and stopped midway (status 75), resumed — and the resumed run must print the
uninterrupted result. Then ckpt as a subdirectory of that project: it
configures from C++17 and puts none of ckpt's tests, examples or benchmarks
in the project's `all`. And `cpack -G DEB`: the package's contents; the
pkg-config builds run against the unpacked package, not the prefix.
"""
import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import ckpttest as ck  # noqa: E402

PROJECT = os.path.join(ck.ROOT, "tests", "consumer", "project")
BUILD = os.path.dirname(os.path.abspath(ck.BIN))  # the build directory whose bin/ holds ckpt
STEPS = "20000"


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        ck.fail("%s exited %d\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout[-4000:], p.stderr[-4000:]))
    return p


def round_trip(exe, work, runner=(), path=lambda p: p):
    """The result line of an uninterrupted run, checked against a checkpoint + resume of the same program
    (`runner`: wine, for a Windows program; `path`: how it spells a directory)."""
    tag = os.path.basename(exe)
    cmd = list(runner) + [exe, STEPS]
    ref = ck.result_line(ck.run(cmd, check=0).stdout)
    d = os.path.join(work, "img-" + tag)
    os.makedirs(d)
    stop = ck.run(cmd + ["--ckpt-dir", path(d), "--ckpt-stop-at", "7000"])
    ck.check(stop.returncode == 75, "%s: --ckpt-stop-at ended with %d:\n%s" % (tag, stop.returncode, stop.stderr))
    ck.check(ck.result_line_or_none(stop.stdout) is None, "%s: printed a result before its checkpoint" % tag)
    res = ck.run(cmd + ["--ckpt-dir", path(d), "--ckpt-resume", "auto"], check=0)
    got = ck.result_line(res.stdout)
    ck.check(got == ref, "%s: resumed %s, uninterrupted %s" % (tag, got, ref))
    ck.check("resumed from" in res.stderr, "%s did not say it resumed:\n%s" % (tag, res.stderr))
    return ref


def install(prefix):
    sh(["cmake", "--install", BUILD, "--prefix", prefix])
    found = glob.glob(os.path.join(prefix, "lib*", "**", "libckpt.a"), recursive=True)
    ck.check(found, "no libckpt.a installed under " + prefix)
    libdir = os.path.dirname(found[0])
    for f in ("include/ckpt/ckpt.hpp", "include/ckpt/ckpt.h", "bin/ckpt"):
        ck.check(os.path.exists(os.path.join(prefix, f)), "not installed: " + f)
    for f in ("cmake/ckpt/ckptConfig.cmake", "cmake/ckpt/ckptConfigVersion.cmake", "pkgconfig/ckpt.pc"):
        ck.check(os.path.exists(os.path.join(libdir, f)), "not installed: %s/%s" % (libdir, f))
    return libdir


def check_find_package(prefix, libdir, work):
    b = os.path.join(work, "build-find-package")
    sh(["cmake", "-S", PROJECT, "-B", b, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_PREFIX_PATH=" + prefix])
    sh(["cmake", "--build", b])
    # C++20 and -ffp-contract=off came from ckpt::ckpt into a C++17 project.
    cmds = open(os.path.join(b, "compile_commands.json")).read() if os.path.exists(
        os.path.join(b, "compile_commands.json")) else sh(["ninja", "-C", b, "-t", "commands", "sums"]).stdout
    ck.check("-std=c++20" in cmds or "-std=gnu++20" in cmds, "sums not compiled as C++20:\n" + cmds[-2000:])
    ck.check("-ffp-contract=off" in cmds, "sums compiled without -ffp-contract=off:\n" + cmds[-2000:])
    ref = round_trip(os.path.join(b, "sums"), work)
    ck.check(round_trip(os.path.join(b, "sums_c"), work) == ref, "the C API program computed another result")
    ck.check(round_trip(os.path.join(b, "sums_host"), work) == ref, "libckpt.a in a shared object differs")
    shared = os.path.join(b, "sums_shared")
    if glob.glob(os.path.join(libdir, "libckpt.so*")):
        ck.check(os.path.exists(shared), "libckpt.so is installed but find_package gave no ckpt::shared")
        ldd = sh(["ldd", shared]).stdout
        ck.check(libdir in ldd, "sums_shared does not use the installed libckpt.so:\n" + ldd)
        ck.check(round_trip(shared, work) == ref, "the program on libckpt.so computed another result")
    print("ok   find_package(ckpt): C++17 project, C++ and C, libckpt.a, libckpt.so, libckpt.a in a .so")
    return ref


def check_pkg_config(libdir, work, ref):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
    pc = lambda *a: sh(["pkg-config"] + list(a) + ["ckpt"], env=env).stdout.split()
    cflags, libs = pc("--cflags"), pc("--libs")
    ck.check("-ffp-contract=off" in cflags, "pkg-config --cflags lacks -ffp-contract=off: %s" % cflags)
    # C++ against libckpt (the shared one where installed).
    exe = os.path.join(work, "sums_pc")
    sh(["c++", "-std=c++20", "-O2"] + cflags + [os.path.join(PROJECT, "sums.cc"), "-o", exe] + libs +
       ["-Wl,-rpath," + libdir])
    ck.check(round_trip(exe, work) == ref, "pkg-config C++ build computed another result")
    # C against libckpt.a: --static names everything it needs (the C++ runtime, codecs, threads).
    private = [a for a in pc("--static", "--libs") if a not in ("-lckpt",) and not a.startswith("-L")]
    exe_c = os.path.join(work, "sums_pc_c")
    sh(["cc", "-O2"] + cflags + [os.path.join(PROJECT, "sums.c"), "-o", exe_c, os.path.join(libdir, "libckpt.a")] +
       private)
    ck.check(round_trip(exe_c, work) == ref, "pkg-config C build on libckpt.a computed another result")
    print("ok   pkg-config ckpt: C++ on libckpt, C on libckpt.a with --static")


def check_deb(work):
    """`cpack -G DEB`: the package holds the CLI, the library, headers, CMake package and pkg-config file
    under /usr and depends on what its binaries link; returns the unpacked tree's libdir (the pkg-config
    check builds against it, so its paths must not depend on where it was built)."""
    if shutil.which("dpkg-deb") is None or shutil.which("cpack") is None:
        print("skip: no dpkg-deb or cpack: no .deb check")
        return None
    out = os.path.join(work, "packages")
    sh(["cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"), "-B", out])
    debs = glob.glob(os.path.join(out, "*.deb"))
    ck.check(len(debs) == 1, "cpack made %s" % debs)
    files = sh(["dpkg-deb", "-c", debs[0]]).stdout
    for f in ("./usr/bin/ckpt", "/libckpt.a", "./usr/include/ckpt/ckpt.hpp", "/cmake/ckpt/ckptConfig.cmake",
              "/pkgconfig/ckpt.pc"):
        ck.check(f in files, "the .deb lacks %s:\n%s" % (f, files))
    depends = sh(["dpkg-deb", "-f", debs[0], "Depends"]).stdout
    ck.check("libc6" in depends, "the .deb's Depends: %r" % depends)
    root = os.path.join(work, "deb-root")
    sh(["dpkg-deb", "-x", debs[0], root])
    found = glob.glob(os.path.join(root, "usr", "lib*", "**", "libckpt.a"), recursive=True)
    ck.check(found, "no libckpt.a in the unpacked .deb")
    print("ok   cpack -G DEB: %s (Depends: %s)" % (os.path.basename(debs[0]), depends.strip()))
    return os.path.dirname(found[0])


def check_mingw(work, ref):
    """The Windows build (MinGW-w64) installed, `cpack -G ZIP` of it, and the project built against it with
    the MinGW toolchain (-Dckpt_STATIC_RUNTIME=ON: no runtime DLLs needed) and run under Wine."""
    wbuild = os.path.join(ck.CROSS_ROOT, "windows-x64")
    if not os.path.exists(os.path.join(wbuild, "bin", "ckpt.exe")) or shutil.which("wine") is None:
        print("skip: no Windows build or no wine: no MinGW consumer check")
        return
    prefix = os.path.join(work, "prefix-windows")
    sh(["cmake", "--install", wbuild, "--prefix", prefix])
    for f in ("bin/ckpt.exe", "lib/libckpt.a", "include/ckpt/ckpt.hpp", "lib/cmake/ckpt/ckptConfig.cmake"):
        ck.check(os.path.exists(os.path.join(prefix, f)), "Windows install lacks " + f)
    out = os.path.join(work, "packages-windows")
    sh(["cpack", "-G", "ZIP", "--config", os.path.join(wbuild, "CPackConfig.cmake"), "-B", out])
    zips = glob.glob(os.path.join(out, "*.zip"))
    ck.check(len(zips) == 1, "cpack -G ZIP made %s" % zips)
    listing = sh(["python3", "-m", "zipfile", "-l", zips[0]]).stdout
    for f in ("bin/ckpt.exe", "lib/libckpt.a", "include/ckpt/ckpt.h"):
        ck.check(f in listing, "the Windows zip lacks %s:\n%s" % (f, listing))
    b = os.path.join(work, "build-mingw")
    sh(["cmake", "-S", PROJECT, "-B", b, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
        "-DCMAKE_TOOLCHAIN_FILE=" + os.path.join(ck.ROOT, "cmake", "toolchains", "mingw-w64-x86_64.cmake"),
        "-DCMAKE_PREFIX_PATH=" + prefix, "-Dckpt_STATIC_RUNTIME=ON"])
    sh(["cmake", "--build", b, "--target", "sums", "sums_c"])
    ck.start_wineserver()
    # Wine's session services, started by the first program, would hold a captured output open until
    # they exit: start them with no pipe of ours.
    subprocess.run(["wine", os.path.join(b, "sums.exe"), "1"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    exes = [os.path.join(b, "sums.exe"), os.path.join(b, "sums_c.exe")]
    # And with pkg-config and the MinGW compilers, linked statically (-static: libckpt.a and the runtimes).
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    pc = lambda *a: sh(["pkg-config"] + list(a) + ["ckpt"], env=env).stdout.split()
    cflags, libs = pc("--cflags"), pc("--static", "--libs")
    ck.check("-lws2_32" in libs, "the Windows ckpt.pc lacks ws2_32: %s" % libs)
    for compiler, src, exe in (("x86_64-w64-mingw32-g++-posix", "sums.cc", "sums_pc.exe"),
                               ("x86_64-w64-mingw32-gcc-posix", "sums.c", "sums_pc_c.exe")):
        extra = ["-std=c++20"] if src.endswith(".cc") else []
        exes.append(os.path.join(work, exe))
        sh([compiler, "-O2"] + extra + cflags + [os.path.join(PROJECT, src), "-o", exes[-1], "-static"] + libs)
    for exe in exes:
        got = round_trip(exe, work, runner=["wine"], path=ck.wine_path)
        ck.check(got == ref, "%s under Wine: %s, Linux: %s" % (os.path.basename(exe), got, ref))
    print("ok   MinGW-w64: the Windows build installed, its zip; C++ and C programs built with find_package and "
          "with pkg-config, run under Wine: the Linux result")


def check_subdirectory(work):
    b = os.path.join(work, "build-subdir")
    sh(["cmake", "-S", PROJECT, "-B", b, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DCKPT_SOURCE_DIR=" + ck.ROOT])
    targets = sh(["ninja", "-C", b, "-t", "targets", "all"]).stdout
    names = {l.split(":")[0].strip() for l in targets.splitlines()}
    for t in ("unit_tests", "heat", "wave_c", "write_bench", "sums"):
        wanted = t == "sums"
        ck.check((t in names) == wanted, "add_subdirectory: %s is%s a target: %s" % (
            t, "n't" if wanted else "", sorted(n for n in names if "/" not in n)[:60]))
    # The graph builds sums from ckpt's sources (a dry run: the installed build above compiled them).
    dry = sh(["ninja", "-C", b, "-n", "sums"]).stdout
    ck.check("ckpt_objs" in dry and "sums.cc" in dry, "add_subdirectory: sums does not build libckpt:\n" + dry[-2000:])
    print("ok   add_subdirectory(ckpt) from a C++17 project: no tests, examples or benchmarks in all")


def main():
    for tool in ("cmake", "ninja", "pkg-config", "c++", "cc"):
        if shutil.which(tool) is None:
            print("skip: no " + tool)
            sys.exit(ck.SKIP)
    work = ck.tempdir("consumer")
    try:
        prefix = os.path.join(work, "prefix")
        libdir = install(prefix)
        ref = check_find_package(prefix, libdir, work)
        deb_libdir = check_deb(work)
        check_pkg_config(deb_libdir or libdir, work, ref)
        check_mingw(work, ref)
        check_subdirectory(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
