# Source it. `swiftpm ARGS...` runs `swift ARGS...`; when the package manager itself dies of a
# signal (Swift 6.3.1's swift-package has crashed in libdispatch early in a fresh CI build, exit
# 139, before compiling any of our code) it says so and runs the same command once more. A
# compile error or a failing test exits normally and is never retried.
swiftpm() {
  local rc=0
  swift "$@" || rc=$?
  if (( rc > 128 )); then
    echo "swift $* was killed by signal $((rc - 128)) (a crash of the toolchain, not a build or test failure); running it once more" >&2
    rc=0
    swift "$@" || rc=$?
  fi
  return "$rc"
}
