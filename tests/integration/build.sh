#!/usr/bin/env bash
# Integration tests of the `build` step (steps/build.c) against small real projects generated
# here: meson, CMake, a plain Makefile (and ninja, cargo when installed), each with `tool: auto`
# and with the tool named; `target`, `args`, `jobs`, `dir`, `working-directory`; a directory
# without build files. The tools run for real; thin logging wrappers put first on PATH (through
# RUNNER_PATH) record how the step invoked them. TAP output; see lib.sh.
#   build.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

NPROC=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)

# ---- generated projects -----------------------------------------------------------------------

# hello.c prints "GREETING world"; other.c is a second target that `target:` must leave unbuilt.
c_sources() { # DIR
	mkdir -p "$1"
	cat >"$1/hello.c" <<'EOF'
#include <stdio.h>
#ifndef GREETING
#define GREETING "hello"
#endif
int main(void)
{
	printf("%s world\n", GREETING);
	return 0;
}
EOF
	cat >"$1/other.c" <<'EOF'
int main(void) { return 0; }
EOF
}

gen_meson() { # DIR
	c_sources "$1"
	cat >"$1/meson.build" <<'EOF'
project('hello', 'c')
executable('hello', 'hello.c', c_args : ['-DGREETING="' + get_option('greeting') + '"'])
executable('other', 'other.c')
EOF
	cat >"$1/meson_options.txt" <<'EOF'
option('greeting', type : 'string', value : 'hello')
EOF
}

gen_cmake() { # DIR
	c_sources "$1"
	cat >"$1/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.10)
project(hello C)
set(GREETING "hello" CACHE STRING "the greeting")
add_executable(hello hello.c)
target_compile_definitions(hello PRIVATE GREETING="${GREETING}")
add_executable(other other.c)
EOF
}

gen_make() { # DIR
	c_sources "$1"
	cat >"$1/Makefile" <<'EOF'
GREETING ?= hello
all: hello other
hello: hello.c
	$(CC) -DGREETING='"$(GREETING)"' -o $@ hello.c
other: other.c
	$(CC) -o $@ other.c
.PHONY: all
EOF
}

gen_ninja() { # DIR
	c_sources "$1"
	cat >"$1/build.ninja" <<'EOF'
rule cc
  command = cc -o $out $in
build hello: cc hello.c
build other: cc other.c
default hello other
EOF
}

gen_cargo() { # DIR
	mkdir -p "$1/src"
	cat >"$1/Cargo.toml" <<'EOF'
[package]
name = "hello"
version = "0.1.0"
edition = "2021"
EOF
	cat >"$1/src/main.rs" <<'EOF'
fn main() { println!("hello world"); }
EOF
}

# Logging wrappers: $T/shim/TOOL appends "TOOL ARGS" to $T/tools.log, then runs the real tool.
# The workflow's first step puts $T/shim first on PATH for the later steps (RUNNER_PATH).
make_shims() {
	mkdir -p "$T/shim"
	local t real
	for t in meson ninja cmake make cargo; do
		real=$(command -v "$t") || continue
		printf '#!/bin/sh\nprintf "%%s\\n" "%s $*" >>"%s/tools.log"\nexec "%s" "$@"\n' "$t" "$T" "$real" \
			>"$T/shim/$t"
		chmod +x "$T/shim/$t"
	done
}
SHIM_STEP='      - run: echo "@T@/shim" >> "$RUNNER_PATH"'

# Skip the subtest unless every tool named is installed. 0 if they all are.
need() {
	local t
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1; then
			skip "$t is not installed"
			return 1
		fi
	done
	return 0
}

# Runs $1 (a built program) and checks that it prints $2.
expect_prints() { # PROGRAM TEXT
	if [ ! -x "$1" ]; then
		fail "${1#"$T"/} was not built"
		return
	fi
	expect_eq "output of ${1#"$T"/}" "$("$1")" "$2"
}

expect_tool_call() { # FIXED-STRING: a line of tools.log is exactly this invocation
	grep -qxF -- "$1" "$T/tools.log" 2>/dev/null ||
		fail "no invocation '$1' in tools.log: $(tr '\n' '|' <"$T/tools.log" 2>/dev/null | cut -c 1-300)"
}

# ---- auto detection ---------------------------------------------------------------------------

t_meson_auto() {
	need meson ninja || return
	gen_meson "$T"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: auto}
EOF
	run run p.yml
	expect_rc 0
	expect_grep "build: detected meson" "$(step_log b 0)"
	expect_file "$T/build/build.ninja"
	expect_prints "$T/build/hello" "hello world"
	expect_prints "$T/build/other" ""
}

t_cmake_auto() {
	need cmake make || return
	gen_cmake "$T"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: auto}
EOF
	run run p.yml
	expect_rc 0
	expect_grep "build: detected cmake" "$(step_log b 0)"
	expect_file "$T/build/CMakeCache.txt"
	expect_prints "$T/build/hello" "hello world"
}

t_make_auto() {
	need make cc || return
	gen_make "$T"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build:
EOF
	run run p.yml
	expect_rc 0
	expect_grep "build: detected make" "$(step_log b 0)"
	expect_prints "$T/hello" "hello world"
	expect_prints "$T/other" ""
}

t_ninja_auto() {
	need ninja cc || return
	gen_ninja "$T"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: auto}
EOF
	run run p.yml
	expect_rc 0
	expect_grep "build: detected ninja" "$(step_log b 0)"
	expect_prints "$T/hello" "hello world"
}

t_cargo_auto() {
	need cargo || return
	gen_cargo "$T"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: auto, jobs: 2}
        env: {CARGO_NET_OFFLINE: "true"}
EOF
	run run p.yml
	expect_rc 0
	expect_grep "build: detected cargo" "$(step_log b 0)"
	expect_prints "$T/target/debug/hello" "hello world"
}

# ---- the tool named, with target, args, jobs and dir --------------------------------------------

t_meson_explicit() {
	need meson ninja || return
	gen_meson "$T"
	make_shims
	workflow <<EOF
jobs:
  b:
    steps:
$SHIM_STEP
      - build: {tool: meson, dir: _build, target: hello, args: ["-Dgreeting=bonjour"], jobs: 3}
EOF
	run run p.yml
	expect_rc 0
	expect_no_grep "build: detected" "$(step_log b 1)"
	expect_tool_call "meson setup _build -Dgreeting=bonjour"
	expect_tool_call "meson compile -C _build -j 3 hello"
	expect_prints "$T/_build/hello" "bonjour world"
	expect_no_file "$T/_build/other"
	expect_no_file "$T/build"
}

t_cmake_explicit() {
	need cmake make || return
	gen_cmake "$T"
	make_shims
	workflow <<EOF
jobs:
  b:
    steps:
$SHIM_STEP
      - build: {tool: cmake, dir: _build, target: hello, args: ["-DGREETING=salut"], jobs: 3}
EOF
	run run p.yml
	expect_rc 0
	expect_tool_call "cmake -S . -B _build -DGREETING=salut"
	expect_tool_call "cmake --build _build -j 3 --target hello"
	expect_prints "$T/_build/hello" "salut world"
	expect_no_file "$T/_build/other"
}

t_make_explicit() {
	need make cc || return
	gen_make "$T/src"
	make_shims
	workflow <<EOF
jobs:
  b:
    steps:
$SHIM_STEP
      - build: {tool: make, dir: src, target: hello, args: ["GREETING=hola"], jobs: 3}
EOF
	run run p.yml
	expect_rc 0
	expect_tool_call "make -C src -j 3 hello GREETING=hola"
	expect_prints "$T/src/hello" "hola world"
	expect_no_file "$T/src/other"
}

t_ninja_explicit() {
	need ninja cc || return
	gen_ninja "$T/gen"
	make_shims
	workflow <<EOF
jobs:
  b:
    steps:
$SHIM_STEP
      - build: {tool: ninja, dir: gen, target: hello, jobs: 2}
EOF
	run run p.yml
	expect_rc 0
	expect_tool_call "ninja -C gen -j 2 hello"
	expect_prints "$T/gen/hello" "hello world"
	expect_no_file "$T/gen/other"
}

t_jobs_default() {
	need make cc || return
	gen_make "$T"
	make_shims
	workflow <<EOF
jobs:
  b:
    steps:
$SHIM_STEP
      - build: {tool: make, jobs: 0}
      - build: {tool: make, target: other}
EOF
	run run p.yml
	expect_rc 0
	expect_tool_call "make -j $NPROC"
	expect_tool_call "make -j $NPROC other"
}

t_working_directory() {
	need meson ninja || return
	gen_meson "$T/proj"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: auto}
        working-directory: proj
EOF
	run run p.yml
	expect_rc 0
	expect_prints "$T/proj/build/hello" "hello world"
	expect_no_file "$T/build"
}

t_rebuild_reuses_config() {
	need meson ninja || return
	gen_meson "$T"
	make_shims
	workflow <<EOF
jobs:
  b:
    steps:
$SHIM_STEP
      - build: {tool: meson}
      - run: sed -i 's/world/there/' hello.c
      - build: {tool: meson}
EOF
	run run p.yml
	expect_rc 0
	expect_eq "meson setup runs" "$(grep -c '^meson setup' "$T/tools.log")" 1
	expect_eq "meson compile runs" "$(grep -c '^meson compile' "$T/tools.log")" 2
	expect_prints "$T/build/hello" "hello there"
}

# ---- failures ---------------------------------------------------------------------------------

t_no_build_files() {
	mkdir -p "$T/empty"
	echo "just text" >"$T/empty/README"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: auto}
        working-directory: empty
      - run: echo "after-$((6 * 7))"
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step status" "$(step_field b 0 status)" failure
	expect_eq "step exit code" "$(step_field b 0 exit_code)" 2
	expect_grep "build: no meson.build, CMakeLists.txt, Cargo.toml, build.ninja or Makefile here" "$(step_log b 0)"
	expect_no_grep "after-42" "$T/out" "$T/err"
}

t_compile_error() {
	need make cc || return
	gen_make "$T"
	echo 'int main(void) { return syntax error; }' >"$T/hello.c"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: auto}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step status" "$(step_field b 0 status)" failure
	expect_grep "error" "$(step_log b 0)"
	expect_no_file "$T/hello"
}

t_wrong_tool() {
	need cmake || return
	gen_make "$T"
	workflow <<'EOF'
jobs:
  b:
    steps:
      - build: {tool: cmake}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step status" "$(step_field b 0 status)" failure
	expect_grep "CMakeLists.txt" "$(step_log b 0)"
}

add "meson project, tool: auto" t_meson_auto
add "CMake project, tool: auto" t_cmake_auto
add "Makefile project, build: with no parameters" t_make_auto
add "build.ninja project, tool: auto" t_ninja_auto
add "cargo project, tool: auto" t_cargo_auto
add "tool: meson with dir, target, args, jobs" t_meson_explicit
add "tool: cmake with dir, target, args, jobs" t_cmake_explicit
add "tool: make with dir, target, args, jobs" t_make_explicit
add "tool: ninja with dir, target, jobs" t_ninja_explicit
add "jobs: 0 and no jobs mean the number of CPUs" t_jobs_default
add "working-directory: detection and build dir in it" t_working_directory
add "a second build reuses the configured build dir" t_rebuild_reuses_config
add "a directory without build files fails with a clear message" t_no_build_files
add "a compile error fails the step" t_compile_error
add "tool: cmake without CMakeLists.txt fails" t_wrong_tool
run_all
