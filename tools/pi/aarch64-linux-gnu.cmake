# Cross-compiling llama.cpp (through llama-cpp-python's scikit-build) for 64-bit Raspberry Pi OS on an x86 host.
# The board-specific -march comes from GGML_CPU_ARM_ARCH (see build_wheel.sh), with GGML_NATIVE=OFF: "native" would
# describe the build machine, not the board.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
