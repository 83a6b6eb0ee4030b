"""SCons build script of the tinyhil PlatformIO platform.

Compiles, for the selected board: the runtime (firmware/runtime/*.c), the kernels (firmware/runtime/kernels/*.c,
if any), the shared board code (firmware/boards/common/*.c), the board's own folder (firmware/boards/<board>/*.c)
and the project's sources (src/*.c, e.g. a generated model_data.c). The toolchain is arm-none-eabi-gcc from PATH.
Outputs: firmware.elf, firmware.map and a `size` report. `pio run -t upload` starts QEMU for the qemu-* boards
(serial on stdio) and runs pyOCD for the real ones.
"""

import os
import sys
from os.path import isdir, join

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment  # noqa: F401

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

board_name = board.get("build.tinyhil_board")
firmware_dir = env.GetProjectOption("custom_tinyhil_firmware_dir", "") or os.path.dirname(platform.get_dir())
firmware_dir = os.path.abspath(env.subst(firmware_dir))
runtime_dir = join(firmware_dir, "runtime")
boards_dir = join(firmware_dir, "boards")
if not isdir(join(boards_dir, board_name)):
    sys.stderr.write("Error: no board support folder %s\n" % join(boards_dir, board_name))
    env.Exit(1)

cpu_flags = ["-mthumb", "-mcpu=%s" % board.get("build.cpu")] + list(board.get("build.tinyhil_fpu_flags", []))
project_dir = env.subst("$PROJECT_DIR")

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="arm-none-eabi-gdb",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    SIZEPROGREGEXP=r"^(?:\.text|\.data|\.ARM\.exidx)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss|\.stack)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
)

env.Append(
    ASFLAGS=cpu_flags,
    CCFLAGS=cpu_flags
    + [
        "-O2",
        "-g",
        "-ffunction-sections",
        "-fdata-sections",
        "-fno-common",
        "-Wall",
        "-Wextra",
        # Reproducible objects wherever the project lives.
        "-ffile-prefix-map=%s=firmware" % firmware_dir,
        "-ffile-prefix-map=%s=project" % project_dir,
    ],
    CFLAGS=["-std=c99"],
    CPPDEFINES=[
        ("TH_BOARD_NAME", env.StringifyMacro(board_name)),
        ("TH_CORE_HZ", "%su" % int(str(board.get("build.f_cpu")).rstrip("L"))),
    ]
    + list(board.get("build.tinyhil_defines", [])),
    CPPPATH=[join(runtime_dir, "include"), "$PROJECT_SRC_DIR", "$PROJECT_INCLUDE_DIR"],
    LINKFLAGS=cpu_flags
    + [
        "-nostartfiles",
        "--specs=nano.specs",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        "-Wl,-Map,%s" % join("$BUILD_DIR", "firmware.map"),
        "-L%s" % join(boards_dir, "common"),
    ],
    LIBS=["c", "gcc"],
)
env.Replace(LDSCRIPT_PATH=join(boards_dir, board.get("build.ldscript")))

# The project's src/ is built by BuildProgram; everything else comes from the firmware tree.
env.BuildSources(join("$BUILD_DIR", "runtime"), runtime_dir, "+<*.c>")
if isdir(join(runtime_dir, "kernels")):
    env.BuildSources(join("$BUILD_DIR", "kernels"), join(runtime_dir, "kernels"), "+<*.c>")
env.BuildSources(join("$BUILD_DIR", "board_common"), join(boards_dir, "common"), "+<*.c>")
env.BuildSources(join("$BUILD_DIR", "board"), join(boards_dir, board_name), "+<*.c>")

target_elf = env.BuildProgram()
target_size = env.Alias("size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Program size"))
AlwaysBuild(target_size)

# Upload: QEMU for the emulated boards (interactive, serial on stdio), pyOCD for real ones.
qemu = board.get("tinyhil_qemu", {})
if qemu:
    env.Replace(
        UPLOADCMD="qemu-system-arm -M %s -cpu %s -nographic -icount shift=0 "
        "-semihosting-config enable=on,target=native -serial mon:stdio -kernel $SOURCE"
        % (qemu["machine"], qemu["cpu"])
    )
else:
    env.Replace(UPLOADCMD="pyocd load -W -t %s $SOURCE" % board.get("debug.pyocd_target", ""))
AlwaysBuild(env.Alias("upload", target_elf, env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")))

Default([target_elf, target_size])
