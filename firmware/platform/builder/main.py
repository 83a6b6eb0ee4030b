"""SCons build script of the tinyhil PlatformIO platform.

Compiles, for the selected board: the runtime (firmware/runtime/*.c), the kernels (firmware/runtime/kernels/**/*.c,
if any), the shared board code (firmware/boards/common/*.c), the board's own folder (firmware/boards/<board>/*.c)
and the project's sources (src/*.c, e.g. a generated model_data.c). The toolchain is arm-none-eabi-gcc from PATH.
Outputs: firmware.elf, firmware.map and a `size` report. `pio run -t upload` starts QEMU for the qemu-* boards
(serial on stdio), runs pyOCD for the real ones, or
bossac through the Arduino bootloader (upload protocol sam-ba).
"""

import hashlib
import os
import shutil
import subprocess
import sys
from os.path import isdir, join

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

board_name = board.get("build.tinyhil_board")
firmware_dir = env.GetProjectOption("custom_tinyhil_firmware_dir", "") or os.path.dirname(platform.get_dir())
firmware_dir = os.path.abspath(env.subst(firmware_dir))
runtime_dir = join(firmware_dir, "runtime")
boards_dir = join(firmware_dir, "boards")
if not isdir(join(boards_dir, board_name)):
    sys.stderr.write(f"Error: no board support folder {join(boards_dir, board_name)}\n")
    env.Exit(1)

cpu_flags = ["-mthumb", f"-mcpu={board.get('build.cpu')}"] + list(board.get("build.tinyhil_fpu_flags", []))
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
        f"-ffile-prefix-map={firmware_dir}=firmware",
        f"-ffile-prefix-map={project_dir}=project",
    ],
    CFLAGS=["-std=c99"],
    CPPDEFINES=[
        ("TH_BOARD_NAME", env.StringifyMacro(board_name)),
        ("TH_CORE_HZ", f"{int(str(board.get('build.f_cpu')).rstrip('L'))}u"),
    ]
    + list(board.get("build.tinyhil_defines", [])),
    CPPPATH=[join(runtime_dir, "include"), "$PROJECT_SRC_DIR", "$PROJECT_INCLUDE_DIR"],
    LINKFLAGS=cpu_flags
    + [
        "-nostartfiles",
        "--specs=nano.specs",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        # One list element per argument, and no $VAR inside one: SCons splits an element at the spaces of what a
        # variable expands to (a checkout path with a space), but quotes a plain element that has them.
        "-Wl,-Map," + join(env.subst("$BUILD_DIR"), "firmware.map"),
        "-L" + join(boards_dir, "common"),
    ],
    LIBS=["c", "gcc"],
)
env.Replace(LDSCRIPT_PATH=join(boards_dir, board.get("build.ldscript")))

# --- The firmware library: runtime, kernels and board code, shared between projects ---------------------------
# Every generated project links the same runtime/kernel/board objects; only src/ (the model) differs. They are
# compiled once per (board, flags, sources) into libtinyhil.a under the core dir, keyed by a content hash, and
# later projects link the cached archive: a new model then compiles one file. A miss builds the objects in the
# project and stores the archive atomically (concurrent builds may both store; the first rename wins).
fw_env = env.Clone()
fw_env.ProcessFlags(env.get("BUILD_FLAGS"))  # project -D flags (e.g. TH_MAX_LAYERS) configure the runtime too
# Board code may include the private headers of boards/common (channels.h, armv7m_core.h, ...).
fw_env.Replace(CPPPATH=[join(runtime_dir, "include"), join(boards_dir, "common")])
fw_env.Replace(
    CCFLAGS=[f for f in fw_env["CCFLAGS"] if not f.startswith(f"-ffile-prefix-map={project_dir}=")]
)

kernels_dir = join(runtime_dir, "kernels")
# The kernels folder and its subfolders (one per core family, e.g. kernels/mm/).
kernel_dirs = sorted(root for root, _, _ in os.walk(kernels_dir)) if isdir(kernels_dir) else []
fw_sources = []
for folder in (runtime_dir, *kernel_dirs, join(boards_dir, "common"), join(boards_dir, board_name)):
    if isdir(folder):
        fw_sources += sorted(
            join(folder, f) for f in os.listdir(folder) if f.endswith((".c", ".h", ".ld", ".inc"))
        )
include_dir = join(runtime_dir, "include")
fw_sources += sorted(join(include_dir, f) for f in os.listdir(include_dir) if f.endswith(".h"))


def _firmware_key():
    h = hashlib.sha256()
    h.update(fw_env.subst("$CC $CCFLAGS $CFLAGS $_CPPDEFFLAGS").encode())
    h.update(subprocess.run([fw_env.subst("$CC"), "--version"], capture_output=True, check=False).stdout)
    for path in fw_sources:
        h.update(os.path.relpath(path, firmware_dir).encode() + b"\0")
        with open(path, "rb") as fp:
            h.update(fp.read() + b"\0")
    return h.hexdigest()[:24]


lib_cache_root = env.GetProjectOption("custom_tinyhil_lib_cache", "") or join(
    env.subst("$PROJECT_CORE_DIR"), "tinyhil-libcache"
)
lib_key = _firmware_key()
lib_cached = join(lib_cache_root, f"{board_name}-{lib_key}", "libtinyhil.a")

if os.path.isfile(lib_cached):
    fw_lib = env.File(lib_cached)
else:
    fw_objects = []
    for name, folder, pattern in (
        ("runtime", runtime_dir, "+<*.c>"),
        ("kernels", kernels_dir, "+<**/*.c>"),
        ("board_common", join(boards_dir, "common"), "+<*.c>"),
        ("board", join(boards_dir, board_name), "+<*.c>"),
    ):
        if isdir(folder):
            fw_objects += [
                fw_env.Object(n) for n in fw_env.CollectBuildFiles(join("$BUILD_DIR", name), folder, pattern)
            ]
    fw_lib = fw_env.StaticLibrary(join("$BUILD_DIR", "tinyhil"), fw_objects)[0]

    def _store_lib(target, source, env):
        if _firmware_key() != lib_key:
            # A source changed while the library was compiled: its objects may mix old and new code, so they
            # must not be filed under the key of the bytes read before (this build is rejected the same way).
            return
        dest_dir = os.path.dirname(lib_cached)
        tmp_dir = f"{dest_dir}.tmp{os.getpid()}"
        os.makedirs(tmp_dir, exist_ok=True)
        shutil.copyfile(fw_lib.get_abspath(), join(tmp_dir, "libtinyhil.a"))
        try:
            os.makedirs(os.path.dirname(dest_dir), exist_ok=True)
            os.rename(tmp_dir, dest_dir)
        except OSError:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        _prune_lib_cache(os.path.dirname(dest_dir), keep=12, min_age_s=600)

    def _prune_lib_cache(root, keep, min_age_s):
        # Every firmware source edit makes a new entry; drop the oldest of this board's entries, but never one
        # young enough that a concurrent build may be about to link it.
        import time

        entries = [
            join(root, d) for d in os.listdir(root) if d.startswith(board_name + "-") and ".tmp" not in d
        ]
        entries.sort(key=os.path.getmtime, reverse=True)
        for old in entries[keep:]:
            if time.time() - os.path.getmtime(old) > min_age_s:
                shutil.rmtree(old, ignore_errors=True)


# Whole archive: the vector table and the fault/IRQ handlers are referenced by nothing but the hardware;
# --gc-sections still drops every unused function.
# The archive goes in as a node ($TINYHIL_LIB), which SCons substitutes as one (quoted) argument; its path
# written into the string would be split at a space of the checkout path.
env.Replace(TINYHIL_LIB=fw_lib)
env.Append(_LIBFLAGS=" -Wl,--whole-archive $TINYHIL_LIB -Wl,--no-whole-archive")
target_elf = env.BuildProgram()
env.Depends(target_elf, fw_lib)
if not os.path.isfile(lib_cached):
    env.AddPostAction(target_elf, env.VerboseAction(_store_lib, "Caching the firmware library"))
target_size = env.Alias("size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Program size"))
AlwaysBuild(target_size)

# Upload: QEMU for the emulated boards (interactive, serial on stdio); for real boards pyOCD over a debug probe, or
# (protocol sam-ba, the Nano 33 BLE) the Arduino bootloader over the board's own USB port with bossac.
qemu = board.get("tinyhil_qemu", {})
upload_protocol = env.subst("$UPLOAD_PROTOCOL") or board.get("upload.protocol", "")
upload_actions = []
if qemu:
    env.Replace(
        UPLOADCMD=f"qemu-system-arm -M {qemu['machine']} -cpu {qemu['cpu']} -nographic -icount shift=0 "
        "-semihosting-config enable=on,target=native -serial mon:stdio -kernel $SOURCE"
    )
    upload_actions = [env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]
    upload_source = target_elf
elif upload_protocol == "sam-ba":
    # The bootloader takes a raw image for the address the application is linked at (0x10000 on the Nano): the
    # .bin of the ELF's load addresses, which start there.
    upload_source = env.Command(
        join("$BUILD_DIR", "firmware.bin"), target_elf, "$OBJCOPY -O binary $SOURCE $TARGET"
    )
    bossac_dir = platform.get_package_dir("tool-bossac-nordicnrf52") or ""
    bossac = shutil.which("bossac", path=bossac_dir) or shutil.which("bossac") or "bossac"

    def _enter_bootloader(target, source, env):
        # Arduino convention: opening the port at 1200 baud and dropping DTR makes a running sketch reset into
        # the bootloader, which then enumerates as a new port. A board already in the bootloader (reset button
        # pressed twice) is found directly.
        from platformio.device.list.util import list_serial_ports

        env.AutodetectUploadPort()
        upload = board.get("upload", {})
        if upload.get("use_1200bps_touch", False):
            before = list_serial_ports()
            env.TouchSerialPort("$UPLOAD_PORT", 1200)
            if upload.get("wait_for_upload_port", False):
                env.Replace(UPLOAD_PORT=env.WaitForNewSerialPort(before))

    env.Replace(
        UPLOADER=bossac,
        UPLOADCMD='"$UPLOADER" --port="$UPLOAD_PORT" -U -i -e -w "$SOURCE" -R',
    )
    upload_actions = [
        env.VerboseAction(_enter_bootloader, "Entering the bootloader"),
        env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE"),
    ]
else:
    env.Replace(UPLOADCMD=f"pyocd load -W -t {board.get('debug.pyocd_target', '')} $SOURCE")
    upload_actions = [env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]
    upload_source = target_elf
AlwaysBuild(env.Alias("upload", upload_source, upload_actions))

Default([target_elf, target_size])
