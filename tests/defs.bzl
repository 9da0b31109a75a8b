"""Builds one whole-allocator test twice from the same sources.

hakmem_dual_test(name = "x", srcs = [...]) creates

  x_linked   cc_test linked with `malloc = "//hakmem:malloc"` (override variant)
  x_bin      plain cc_binary on glibc's malloc (testonly, not run by itself)
  x_preload  sh_test running x_bin with LD_PRELOAD=libhakmem.so
  x          test_suite holding all the tests below

`configs` adds configurations that reuse both binaries with another
environment and other arguments (hakmem reads its HAKMEM_* knobs once, at
start-up, so each configuration needs a process of its own):

  configs = {"ttl": {"env": {...}, "args": [...], "tags": [...]}}
  x_ttl_linked   sh_test running x_linked's binary directly
  x_ttl_preload  sh_test running x_bin under LD_PRELOAD

A configuration tagged "manual" stays out of the test_suite (a test_suite
runs even the manual tests it lists).

Both binaries link a variant-specific copy of :test_util whose global test
environment first asserts that hakmem really is the active allocator (a test
binary that silently ran on glibc would prove nothing).
"""

def hakmem_dual_test(
        name,
        srcs,
        deps = [],
        env = {},
        args = [],
        configs = {},
        size = "medium",
        timeout = None,
        tags = [],
        copts = [],
        linkopts = []):
    common_tags = tags + ["no_sanitizer"]
    linked = name + "_linked"
    binary = name + "_bin"
    native.cc_test(
        name = linked,
        srcs = srcs,
        deps = deps + [
            ":test_util_linked",
            "//third_party:gtest_main",
        ],
        malloc = "//hakmem:malloc",
        # One executable, as a cc_binary with this malloc would be deployed
        # (cc_test's default would put hakmem in a chain of _solib_ objects).
        linkstatic = True,
        copts = copts,
        linkopts = linkopts + ["-ldl", "-pthread"],
        env = env,
        args = args,
        size = size,
        timeout = timeout,
        tags = common_tags,
    )
    native.cc_binary(
        name = binary,
        srcs = srcs,
        deps = deps + [
            ":test_util_preload",
            "//third_party:gtest_main",
        ],
        copts = copts,
        linkopts = linkopts + ["-ldl", "-pthread"],
        testonly = True,
        tags = common_tags,
    )
    tests = [linked]
    for config_name, config in [("", {"env": env, "args": args})] + configs.items():
        config_tags = common_tags + config.get("tags", [])
        in_suite = "manual" in tags or "manual" not in config_tags
        if config_name:
            native.sh_test(
                name = "%s_%s_linked" % (name, config_name),
                srcs = ["run_linked.sh"],
                args = ["$(rootpath :%s)" % linked] + config.get("args", []),
                data = [":" + linked],
                env = config.get("env", {}),
                size = size,
                timeout = timeout,
                tags = config_tags,
            )
            if in_suite:
                tests.append("%s_%s_linked" % (name, config_name))
        preload = "%s_%s_preload" % (name, config_name) if config_name else name + "_preload"
        native.sh_test(
            name = preload,
            srcs = ["run_preloaded.sh"],
            args = [
                "$(rootpath //hakmem:libhakmem.so)",
                "$(rootpath :%s)" % binary,
            ] + config.get("args", []),
            data = [
                ":" + binary,
                "//hakmem:libhakmem.so",
            ],
            env = config.get("env", {}),
            size = size,
            timeout = timeout,
            tags = config_tags,
        )
        if in_suite:
            tests.append(preload)
    native.test_suite(
        name = name,
        tests = [":" + t for t in tests],
        # A test_suite's tags filter its tests; only "manual" is passed on, so
        # that a manual group stays out of `bazel test //tests/...`.
        tags = ["manual"] if "manual" in tags else [],
    )
