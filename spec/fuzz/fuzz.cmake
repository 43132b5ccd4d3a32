# spec/fuzz/fuzz.cmake - the libFuzzer targets (MW_FUZZ, clang only).
#
#   fuzz_http      HTTP request head + upgrade handshake (src/http.c, handshake.c)
#   fuzz_ws        client frames and messages after the upgrade (src/ws.c)
#   fuzz_utf8      the UTF-8 validator, streaming vs one-shot (src/utf8.c)
#   fuzz_protocol  protocol.decode in embedded LuaJIT (lua/moonwire/protocol.lua)
#   fuzz_envelope  the JSON envelope scanner (src/envelope.c), differential
#                  against lua-cjson in embedded LuaJIT
#
# The sources under test are compiled again here with coverage
# instrumentation (-fsanitize=fuzzer-no-link) and ASan + UBSan; the rest of
# the build is untouched. `cmake --build DIR --target fuzz` builds only these
# (scripts/test does that in build-fuzz/).
#
# Each target is also a CTest test, fuzz_<target> (label "fuzz"): a short
# run over its seed corpus (corpus/<target>/) and every saved crash
# (regressions/<target>/), failing on any crash, leak, timeout or broken
# invariant. New corpus entries go to <build>/fuzz/<target>/corpus and crash
# files to <build>/fuzz/<target>/: a run never writes into the source tree.

set(MW_FUZZ_SECONDS 10 CACHE STRING "How long each fuzz_<target> CTest test fuzzes")
set(MW_FUZZ_TARGETS http ws utf8 protocol envelope)

set(MW_FUZZ_SANITIZE -fsanitize=address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer -g)

add_library(mw_fuzz_core STATIC
  src/errors.c src/utf8.c src/http.c src/handshake.c src/ws.c src/outq.c src/envelope.c)
target_include_directories(mw_fuzz_core PUBLIC src ${HTTP_PARSER_INCLUDE})
target_compile_options(mw_fuzz_core PRIVATE -fsanitize=fuzzer-no-link ${MW_FUZZ_SANITIZE})
target_link_libraries(mw_fuzz_core PUBLIC
  PkgConfig::LIBUV ${WSLAY_TARGET} OpenSSL::Crypto ${HTTP_PARSER_LIB})

# Longest input per target: room for a head past max_header_bytes (1024 in
# fuzz_http), and for messages past wslay's 4 KiB buffer and the 8 KiB limit.
set(MW_FUZZ_MAX_LEN_http 4096)
set(MW_FUZZ_MAX_LEN_ws 20000)
set(MW_FUZZ_MAX_LEN_utf8 1024)
set(MW_FUZZ_MAX_LEN_protocol 4096)
set(MW_FUZZ_MAX_LEN_envelope 4096)

add_custom_target(fuzz)
foreach(t IN LISTS MW_FUZZ_TARGETS)
  add_executable(fuzz_${t} ${CMAKE_CURRENT_LIST_DIR}/fuzz_${t}.c)
  target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer ${MW_FUZZ_SANITIZE})
  target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer ${MW_FUZZ_SANITIZE})
  target_link_libraries(fuzz_${t} PRIVATE mw_fuzz_core)
  add_dependencies(fuzz fuzz_${t})

  set(work ${CMAKE_BINARY_DIR}/fuzz/${t})
  file(MAKE_DIRECTORY ${work}/corpus)
  # libFuzzer writes new inputs to the first directory only; the seeds and
  # regressions are read. (It truncates inputs longer than -max_len.)
  add_test(NAME fuzz_${t}
           COMMAND $<TARGET_FILE:fuzz_${t}>
                   -max_total_time=${MW_FUZZ_SECONDS} -timeout=10 -rss_limit_mb=2048
                   -max_len=${MW_FUZZ_MAX_LEN_${t}} -print_final_stats=1
                   -artifact_prefix=${work}/
                   ${work}/corpus
                   ${CMAKE_CURRENT_LIST_DIR}/corpus/${t}
                   ${CMAKE_CURRENT_LIST_DIR}/regressions/${t}
           WORKING_DIRECTORY ${work})
  set_tests_properties(fuzz_${t} PROPERTIES LABELS fuzz TIMEOUT 300)
endforeach()

# moonwire.protocol decodes through moonwire.core.json_level (json_lua.c).
target_sources(fuzz_protocol PRIVATE ${PROJECT_SOURCE_DIR}/src/lua/json_lua.c)
target_link_libraries(fuzz_protocol PRIVATE PkgConfig::LUAJIT)
target_compile_definitions(fuzz_protocol PRIVATE MW_FUZZ_LUA_DIR="${PROJECT_SOURCE_DIR}/lua"
                                                 MW_FUZZ_DIR="${CMAKE_CURRENT_LIST_DIR}")
# lua-cjson (a module LuaJIT loads) finds the Lua C API in the executable.
set_target_properties(fuzz_protocol PROPERTIES ENABLE_EXPORTS ON)

# fuzz_envelope compares the scanner with lua-cjson, in LuaJIT as above.
target_link_libraries(fuzz_envelope PRIVATE PkgConfig::LUAJIT)
target_compile_definitions(fuzz_envelope PRIVATE MW_FUZZ_DIR="${CMAKE_CURRENT_LIST_DIR}")
set_target_properties(fuzz_envelope PROPERTIES ENABLE_EXPORTS ON)
