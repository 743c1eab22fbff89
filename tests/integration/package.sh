#!/usr/bin/env bash
# Integration tests of the `package` and `download` steps through `runner run`: round trips in
# every format (tar.gz, tar.xz, tar.zst, zip) between two jobs, file modes, symlinks, times,
# empty directories and odd names; `exclude`; `if-no-files`; `download` into a `path:`;
# artifact names with expressions in a matrix; a hostile artifact. TAP output; see lib.sh.
#   package.sh RUNNER_BINARY
. "$(dirname "$0")/lib.sh"

# The run's artifact store (the only directory under .runner/artifacts).
store() {
	local d
	d=$(find "$T/.runner/artifacts" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1)
	echo "${d:-$T/.runner/artifacts/NO-STORE}"
}

# A tree with text, binary, an executable, a private file, a symlink, an empty directory, a
# name with spaces and UTF-8, and an old mtime, under $T/$1.
make_tree() { # DIR
	local d=$T/$1
	mkdir -p "$d/bin" "$d/lib/deep/er" "$d/empty" "$d/dir with space"
	printf 'line one\nline two\n' >"$d/README.txt"
	head -c 200000 /dev/urandom >"$d/lib/blob.bin"
	printf '#!/bin/sh\necho tool-ran-ok\n' >"$d/bin/tool"
	chmod 0755 "$d/bin/tool"
	echo private >"$d/lib/secret.conf"
	chmod 0600 "$d/lib/secret.conf"
	echo deep >"$d/lib/deep/er/file.txt"
	echo spaced >"$d/dir with space/naïve é.txt"
	ln -s ../README.txt "$d/lib/readme-link"
	ln -s tool "$d/bin/tool-alias"
	touch -d '2020-01-02 03:04:05' "$d/README.txt"
}

# Compare the tree $T/$1 with its copy $T/$2: same entries, contents, modes, link targets,
# mtimes of regular files.
expect_same_tree() { # ORIG COPY
	local a=$T/$1 b=$T/$2
	if [ ! -d "$b" ]; then
		fail "${2} does not exist"
		return
	fi
	local la lb
	la=$(cd "$a" && find . -printf '%y %m %P -> %l\n' | sort)
	lb=$(cd "$b" && find . -printf '%y %m %P -> %l\n' | sort)
	if [ "$la" != "$lb" ]; then
		fail "entries, types, modes or link targets differ: $(diff <(echo "$la") <(echo "$lb") | grep '^[<>]' | tr '\n' '|' | cut -c 1-400)"
	fi
	diff -r --no-dereference "$a" "$b" >/dev/null 2>&1 || fail "contents differ: $(diff -rq --no-dereference "$a" "$b" 2>&1 | head -3 | tr '\n' '|')"
	expect_eq "mtime of README.txt" "$(stat -c %Y "$b/README.txt" 2>/dev/null)" "$(stat -c %Y "$a/README.txt")"
	[ -L "$b/lib/readme-link" ] || fail "lib/readme-link is not a symlink in the copy"
}

# List the archive $2 of format $1 with standard tools (proves it is a real archive of that format).
list_archive() { # FORMAT FILE
	case $1 in
	tar.gz) tar -tzf "$2" ;;
	tar.xz) tar -tJf "$2" ;;
	tar.zst) zstd -dcq "$2" | tar -tf - ;;
	zip) python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$2" ;;
	esac
}

magic() { od -An -tx1 -N4 "$1" | tr -d ' \n'; }

roundtrip() { # FORMAT
	local fmt=$1
	make_tree tree
	workflow <<EOF
jobs:
  make:
    steps:
      - package: {name: dist, paths: ["tree/**"], format: $fmt}
  use:
    needs: make
    steps:
      - download: {artifact: dist, path: got/}
      - run: got/tree/bin/tool && test -x got/tree/bin/tool-alias
EOF
	run run p.yml
	expect_rc 0
	expect_same_tree tree got/tree
	expect_grep "tool-ran-ok" "$(step_log use 1)"
	local s f
	s=$(store)
	f=$s/dist.$fmt
	expect_file "$f"
	expect_file "$s/dist.json"
	expect_eq "format in dist.json" "$(js "$s/dist.json" 'd["format"]')" "$fmt"
	expect_eq "sha256 in dist.json" "$(js "$s/dist.json" 'd["sha256"]')" "$(sha "$f")"
	expect_eq "bytes in dist.json" "$(js "$s/dist.json" 'd["bytes"]')" "$(stat -c %s "$f")"
	local want
	case $fmt in
	tar.gz) want=1f8b ;;
	tar.xz) want=fd377a58 ;;
	tar.zst) want=28b52ffd ;;
	zip) want=504b0304 ;;
	esac
	[[ $(magic "$f") == "$want"* ]] || fail "magic bytes of the archive: $(magic "$f"), expected $want..."
	local listing
	listing=$(list_archive "$fmt" "$f" 2>&1)
	grep -q 'tree/lib/deep/er/file.txt' <<<"$listing" || fail "standard tools cannot list it: $(head -c 300 <<<"$listing")"
	expect_grep "package: artifact 'dist' \($fmt\): [0-9]+ files, $(stat -c %s "$f") bytes, sha256 $(sha "$f")" \
		"$(step_log make 0)"
	expect_grep "download: artifact 'dist' extracted into got/" "$(step_log use 0)"
}
t_roundtrip_targz() { roundtrip tar.gz; }
t_roundtrip_tarxz() { roundtrip tar.xz; }
t_roundtrip_tarzst() { roundtrip tar.zst; }
t_roundtrip_zip() { roundtrip zip; }

# A workflow p.yml packaging a.txt (written here) as artifact 'plain' in the default format.
plain_package() {
	echo hi >a.txt
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: plain, paths: a.txt}
EOF
}

t_default_format() {
	plain_package
	run run p.yml
	expect_rc 0
	expect_file "$(store)/plain.tar.gz"
	expect_eq "format" "$(js "$(store)/plain.json" 'd["format"]')" tar.gz
	expect_eq "files" "$(js "$(store)/plain.json" 'd["files"]')" 1
}

t_exclude() {
	mkdir -p src/sub tmp
	echo c >src/main.c
	echo o >src/main.o
	echo o >src/sub/x.o
	echo h >src/sub/x.h
	echo t >tmp/t.txt
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: src, paths: ["src/**", "tmp/**"], exclude: ["**/*.o", "tmp/**"]}
  use:
    needs: make
    steps:
      - download: {artifact: src, path: x}
EOF
	run run p.yml
	expect_rc 0
	expect_file "$T/x/src/main.c"
	expect_file "$T/x/src/sub/x.h"
	expect_no_file "$T/x/src/main.o"
	expect_no_file "$T/x/src/sub/x.o"
	expect_no_file "$T/x/tmp/t.txt"
	local listing
	listing=$(list_archive tar.gz "$(store)/src.tar.gz")
	grep -q 'src/sub/x.h$' <<<"$listing" || fail "src/sub/x.h is not in the archive: $listing"
	! grep -q '\.o$' <<<"$listing" || fail "an excluded .o file is in the archive: $listing"
	! grep -q '^tmp' <<<"$listing" || fail "excluded tmp/ is in the archive: $listing"
}

t_if_no_files_error() {
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: none, paths: ["nothing/**"], if-no-files: error}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step exit code" "$(step_field make 0 exit_code)" 1
	expect_grep "no files matched the paths of artifact 'none'" "$(step_log make 0)"
	expect_no_file "$(store)/none.json"
}

t_if_no_files_default() {
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: none, paths: ["*.nothing"]}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step status" "$(step_field make 0 status)" failure
	expect_grep "no files matched" "$(step_log make 0)"
}

t_if_no_files_warn() {
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: none, paths: ["nothing/**"], if-no-files: warn}
      - run: echo "next-$((6 * 7))"
EOF
	run run p.yml
	expect_rc 0
	expect_eq "step status" "$(step_field make 0 status)" success
	expect_grep "warning: no files matched; artifact 'none' not created" "$(step_log make 0)"
	expect_grep "next-42" "$(step_log make 1)"
	expect_no_file "$(store)/none.json"
	expect_no_file "$(store)/none.tar.gz"
}

t_if_no_files_ignore() {
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: none, paths: ["nothing/**"], if-no-files: ignore}
EOF
	run run p.yml
	expect_rc 0
	expect_eq "step status" "$(step_field make 0 status)" success
	expect_no_grep "no files matched" "$(step_log make 0)" "$T/out" "$T/err"
	expect_no_file "$(store)/none.json"
}

t_exclude_everything() {
	mkdir -p b
	echo o >b/x.o
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: objs, paths: ["b/**"], exclude: ["**/*.o"]}
EOF
	run run p.yml
	expect_rc 1
	expect_grep "no files matched" "$(step_log make 0)"
}

t_download_path_and_root() {
	mkdir -p d
	echo one >d/one.txt
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: d, paths: ["d/**"], format: zip}
      - run: rm -rf d
  use:
    needs: make
    steps:
      - download: {artifact: d, path: nested/deeper}
      - download: {artifact: d}
EOF
	run run p.yml
	expect_rc 0
	expect_eq "in path" "$(cat "$T/nested/deeper/d/one.txt" 2>/dev/null)" one
	expect_eq "in the workspace" "$(cat "$T/d/one.txt" 2>/dev/null)" one
}

t_download_missing() {
	workflow <<'EOF'
jobs:
  use:
    steps:
      - download: {artifact: never-made, path: x}
EOF
	run run p.yml
	expect_rc 1
	expect_eq "step exit code" "$(step_field use 0 exit_code)" 1
	expect_grep "no artifact named 'never-made'" "$(step_log use 0)"
}

t_matrix_names() {
	workflow <<'EOF'
jobs:
  build:
    matrix:
      cc: [gcc, clang, tcc]
    steps:
      - run: |
          mkdir -p "out-${{ matrix.cc }}"
          echo "built by ${{ matrix.cc }}" > "out-${{ matrix.cc }}/which.txt"
      - package: {name: "bin-${{ matrix.cc }}", paths: ["out-${{ matrix.cc }}/**"], format: tar.zst}
  use:
    needs: build
    steps:
      - download: {artifact: bin-gcc, path: g}
      - download: {artifact: bin-clang, path: c}
      - download: {artifact: bin-tcc, path: t}
EOF
	run run p.yml
	expect_rc 0
	local cc
	for cc in gcc clang tcc; do
		expect_file "$(store)/bin-$cc.tar.zst"
		expect_eq "bin-$cc.json name" "$(js "$(store)/bin-$cc.json" 'd["name"]')" "bin-$cc"
	done
	expect_eq "gcc's artifact" "$(cat "$T/g/out-gcc/which.txt" 2>/dev/null)" "built by gcc"
	expect_eq "clang's artifact" "$(cat "$T/c/out-clang/which.txt" 2>/dev/null)" "built by clang"
	expect_eq "tcc's artifact" "$(cat "$T/t/out-tcc/which.txt" 2>/dev/null)" "built by tcc"
	expect_no_file "$T/g/out-clang"
	expect_no_file "$T/c/out-gcc"
}

t_bad_expanded_name() {
	echo x >a.txt
	workflow <<'EOF'
jobs:
  make:
    env: {N: "../escape"}
    steps:
      - package: {name: "${{ env.N }}", paths: a.txt}
EOF
	run run p.yml
	expect_rc 1
	expect_grep "invalid artifact name" "$(step_log make 0)"
	[ -z "$(find "$T/.runner" -name 'escape*' 2>/dev/null)" ] || fail "an archive named after ../escape was written"
}

t_hostile_artifact() {
	# an archive with a '..' entry, registered in the store as if a job had packaged it
	workflow <<'EOF'
jobs:
  plant:
    steps:
      - run: |
          python3 - "$RUNNER_ARTIFACTS" <<'PY'
          import hashlib, io, json, sys, tarfile
          store = sys.argv[1]
          path = store + "/evil.tar.gz"
          with tarfile.open(path, "w:gz") as t:
              for name in ("ok.txt", "../../escaped.txt"):
                  data = b"x\n"
                  info = tarfile.TarInfo(name)
                  info.size = len(data)
                  t.addfile(info, io.BytesIO(data))
          sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
          json.dump({"name": "evil", "format": "tar.gz", "file": "evil.tar.gz", "sha256": sha}, open(store + "/evil.json", "w"))
          PY
  use:
    needs: plant
    steps:
      - download: {artifact: evil, path: in/sub}
EOF
	run run p.yml
	expect_rc 1
	expect_grep "refusing to extract '../../escaped.txt'" "$(step_log use 0)"
	expect_no_file "$T/escaped.txt"
	expect_no_file "$T/in/escaped.txt"
}

t_utf8_names_interop() {
	mkdir -p u
	echo x >"u/naïve é.txt"
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: z, paths: ["u/**"], format: zip}
      - package: {name: g, paths: ["u/**"], format: tar.gz}
EOF
	run run p.yml
	expect_rc 0
	# zip: the UTF-8 flag (general purpose bit 11) must be set, or readers decode names as CP437
	local names
	names=$(python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' \
		"$(store)/z.zip" 2>&1)
	grep -qxF "u/naïve é.txt" <<<"$names" || fail "zip entry names as a zip reader sees them: $(tr '\n' '|' <<<"$names")"
	# tar: GNU tar lists it by its name, without warnings
	local tl
	tl=$(tar -tzf "$(store)/g.tar.gz" 2>&1)
	grep -qxF "u/naïve é.txt" <<<"$tl" || fail "tar -tzf: $(tr '\n' '|' <<<"$tl")"
	! grep -q "^tar:" <<<"$tl" || fail "tar -tzf warns: $(grep '^tar:' <<<"$tl" | head -n 2 | tr '\n' '|')"
}

t_tampered_artifact() {
	echo x >a.txt
	workflow <<'EOF'
jobs:
  make:
    steps:
      - package: {name: a, paths: a.txt}
      - run: printf 'junk' >> "$RUNNER_ARTIFACTS/a.tar.gz"
  use:
    needs: make
    steps:
      - download: {artifact: a, path: in}
EOF
	run run p.yml
	expect_rc 1
	expect_grep "artifact 'a' is damaged \(sha256 mismatch\)" "$(step_log use 0)"
	expect_no_file "$T/in/a.txt"
}

# The runner, runner-ext.so and runner-shim copied under /tmp (a build or install there): the
# sandbox's private /tmp must still show the step's `runner __step` the runner-ext.so it loads.
t_runner_under_tmp() {
	local d
	d=$(mktemp -d /tmp/rnit-runner-under-tmp.XXXXXX)
	cp "$RUNNER" "$(dirname "$RUNNER")/runner-ext.so" "$(dirname "$RUNNER")/runner-shim" "$d/"
	plain_package
	(cd "$T" && exec timeout -k 5 "$RNIT_TIMEOUT" "$d/runner" run p.yml) >"$T/out" 2>"$T/err" </dev/null
	RC=$?
	rm -rf "$d"
	expect_rc 0
	expect_file "$(store)/plain.tar.gz"
}

add "tar.gz round trip: contents, modes, symlinks, mtimes, empty dirs" t_roundtrip_targz
add "tar.xz round trip" t_roundtrip_tarxz
add "tar.zst round trip" t_roundtrip_tarzst
add "zip round trip" t_roundtrip_zip
add "the default format is tar.gz; a single path string" t_default_format
add "exclude drops matching files" t_exclude
add "if-no-files: error fails the step" t_if_no_files_error
add "an empty match fails by default" t_if_no_files_default
add "if-no-files: warn warns and goes on" t_if_no_files_warn
add "if-no-files: ignore is silent" t_if_no_files_ignore
add "everything excluded counts as an empty match" t_exclude_everything
add "download into a path:, and into the workspace" t_download_path_and_root
add "download of an artifact that does not exist fails" t_download_missing
add "matrix: name: bin-\${{ matrix.cc }} lands separately per instance" t_matrix_names
add "an expanded name that is not a valid artifact name is refused" t_bad_expanded_name
add "download refuses an artifact with a '..' entry" t_hostile_artifact
add "download refuses an artifact whose sha256 does not match" t_tampered_artifact
add "non-ASCII names are readable by standard zip and tar readers" t_utf8_names_interop
add "a runner under /tmp: the sandboxed package step still loads runner-ext.so" t_runner_under_tmp
run_all
