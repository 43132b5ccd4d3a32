# spec/tests.cmake - every test, registered with CTest.
#
#   c_*            C unit tests (spec/c/), white-box, one per module
#   lua_*          busted specs under LuaJIT: the runtime (spec/unit/) and
#                  each example app's own specs (through `moonwire test`)
#   integration_*  the real binary on a free loopback port, real clients
#                  (python3-websockets and raw sockets), spec/integration/

find_program(MW_BUSTED busted REQUIRED)
# Debian's interpreter: it is the one python3-websockets is installed for.
find_program(MW_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)

add_test(NAME lua_runtime COMMAND ${MW_BUSTED} --lua=luajit
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
foreach(app hello echo)
  add_test(NAME lua_example_${app}
           COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/examples/${app})
endforeach()

foreach(suite protocol flows reload shutdown cli)
  add_test(NAME integration_${suite}
           COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_${suite}.py
                   --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
  set_tests_properties(integration_${suite} PROPERTIES TIMEOUT 300)
endforeach()

# The installed layout: the binary must find its runtime under
# <prefix>/share/moonwire/lua, and an app must load from there.
add_test(NAME integration_install
         COMMAND sh -c "rm -rf \"$1\" && cmake --install \"$2\" --prefix \"$1\" >/dev/null && \"$1/bin/moonwire\" check \"$3/examples/hello\" | grep -q greet.hello && test -f \"$1/share/moonwire/lua/moonwire/runtime.lua\""
                 sh ${CMAKE_CURRENT_BINARY_DIR}/install-test ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR})

include(${CMAKE_CURRENT_LIST_DIR}/c/tests.cmake)

# The scripting boundary (docs/architecture.md): only src/lua/ may include
# the Lua headers. Fails listing any other file that does.
add_test(NAME lint_lua_boundary
         COMMAND sh -c "! grep -rlE '#include[[:space:]]*[<\"](lua|lauxlib|lualib|luajit)\\.h' \"$1/src\" | grep -v '/src/lua/'"
                 sh ${PROJECT_SOURCE_DIR})

# The benchmark's smoke mode: moonwire-bench (found next to the moonwire
# binary) against examples/hub with tiny numbers; asserts correctness only.
add_test(NAME integration_bench_smoke
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_bench_smoke.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_bench_smoke PROPERTIES TIMEOUT 300)
add_test(NAME lua_example_hub
         COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/examples/hub)

# Rooms, presence and fan-out (issue 3): fixtures/rooms/* and examples/chat.
add_test(NAME integration_rooms
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_rooms.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_rooms PROPERTIES TIMEOUT 300)
add_test(NAME lua_example_chat
         COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/examples/chat)

# Lua isolation (issue 4): a controller that errors, loops forever or
# allocates without bound, each stopped alone (fixtures/isolation).
add_test(NAME integration_isolation
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_isolation.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_isolation PROPERTIES TIMEOUT 300)
