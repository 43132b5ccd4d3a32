# C unit tests: spec/c/test_<module>.c mirrors src/<module>.c. Each is its own
# executable linked to moonwire_core (the same objects as the server) and
# registered as c_<module>. Run them with `ctest -R '^c_'`.
set(MW_C_TEST_MODULES utf8 handshake http config ws idmap outq rooms ratelimit jwt tls watchdog envelope
    server paths metrics counters apikey names latency redis keylimit wsclient shdict hub
    stats expo aggregate shlimits)

foreach(module IN LISTS MW_C_TEST_MODULES)
  add_executable(c_test_${module} ${CMAKE_CURRENT_LIST_DIR}/test_${module}.c)
  target_link_libraries(c_test_${module} PRIVATE moonwire_core)
  add_test(NAME c_${module} COMMAND c_test_${module})
endforeach()
# c_paths finds the compiled Lua modules beside it, in the build tree.
add_dependencies(c_test_paths moonwire_jwt_lua)
# src/nats.c against a real nats-server.
add_executable(c_test_nats ${CMAKE_CURRENT_LIST_DIR}/test_nats.c)
target_link_libraries(c_test_nats PRIVATE moonwire_core)
add_test(NAME c_nats COMMAND c_test_nats)
