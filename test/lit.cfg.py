# -*- Python -*-
# lit configuration for the moe-mlir test suite.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs",
                   "check_constraints.py", "fixtures", "run_fixture.py", "make_bad_inputs.py",
                   "backend_node_tests.py", "ort_compare.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
# The project's venv (scripts/setup.sh): numpy, onnx and ONNX Runtime, for
# tests that compare against ONNX Runtime at test time.
config.substitutions.append(
    ("%venv_python", os.path.join(config.moe_src_root, ".venv", "bin", "python")))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
# Every run in these tests gets NaN-filled fresh outputs and workspace
# (docs/runtime.md): compiled code that reads memory it never wrote fails
# its comparison instead of reading a fresh page's zeros.
llvm_config.with_environment("MOE_RUNTIME_POISON", "1")
tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
tools = [ToolSubst("moe-opt", unresolved="fatal"),
         ToolSubst("moe-import", unresolved="fatal"),
         ToolSubst("moe-compile", unresolved="fatal"),
         ToolSubst("moe-run", unresolved="fatal")]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# The ONNX backend node tests (Debian libonnx-testdata).
if os.path.isdir("/usr/share/libonnx-testdata/data/node"):
    config.available_features.add("onnx-testdata")


import shutil
if shutil.which("valgrind"):
    config.available_features.add("valgrind")
