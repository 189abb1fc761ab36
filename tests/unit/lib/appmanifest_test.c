/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "pavise/appmanifest.h"

#define GOOD                                                                                       \
    "{\"SchemaVersion\": 1, \"Name\": \"telemetry\", "                                             \
    "\"ComponentId\": \"6F1C0C8E-3A1E-4D5B-9A43-0C4F2E9B7D21\", \"EntryPoint\": "                  \
    "\"/bin/telemetry\", "                                                                         \
    "\"CmdArgs\": [\"--broker\", \"mqtt.example.com\"], \"ApplicationType\": \"Default\", "        \
    "\"Version\": \"2.0.1\", \"SecurityCounter\": 3, \"Target\": \"board-x\", "                    \
    "\"Capabilities\": {\"AllowedConnections\": [\"mqtt.example.com\", \"192.0.2.10\"], "          \
    "\"AllowedTcpServerPorts\": [8080], \"Peripherals\": [\"/dev/ttyS1\", \"/dev/gpiochip0\"], "   \
    "\"MutableStorage\": {\"SizeKB\": 128}, \"DeviceAuthentication\": true, "                      \
    "\"SystemEventNotifications\": true, \"SoftwareUpdateDeferral\": true, "                       \
    "\"PowerControls\": [\"ForceReboot\"], \"MemoryLimitKB\": 16384}}"

static void test_good(void **state)
{
    (void)state;
    pv_manifest m;
    pv_err e;
    pv_err_clear(&e);
    assert_int_equal(pv_app_manifest_parse(GOOD, strlen(GOOD), "app_manifest.json", &m, &e), 0);
    char id[PV_UUID_STR_LEN];
    pv_uuid_format(m.component_id, id);
    assert_string_equal(id, "6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21");
    assert_int_equal(m.type, PV_IMAGE_APPLICATION);
    assert_string_equal(m.name, "telemetry");
    assert_string_equal(m.version, "2.0.1");
    assert_int_equal(m.security_counter, 3);
    assert_string_equal(m.target, "board-x");
    assert_int_equal(m.args.n, 2);
    assert_int_equal(m.caps.allowed_connections.n, 2);
    assert_int_equal(m.caps.n_tcp_server_ports, 1);
    assert_int_equal(m.caps.peripherals.n, 2);
    assert_int_equal(m.caps.mutable_storage_kb, 128);
    assert_true(m.caps.device_authentication && m.caps.system_event_notifications &&
                m.caps.software_update_deferral);
    assert_int_equal(m.caps.memory_limit_kb, 16384);
    pv_manifest_free(&m);
}

static void test_minimal_defaults(void **state)
{
    (void)state;
    const char *j = "{\"SchemaVersion\":1,\"Name\":\"a\",\"ComponentId\":"
                    "\"6f1c0c8e-3a1e-4d5b-9a43-0c4f2e9b7d21\",\"EntryPoint\":\"/a\"}";
    pv_manifest m;
    assert_int_equal(pv_app_manifest_parse(j, strlen(j), "m.json", &m, NULL), 0);
    assert_string_equal(m.version, "0.0.0");
    assert_int_equal(m.security_counter, 0);
    assert_null(m.target);
    assert_int_equal(m.caps.mutable_storage_kb, 0);
    pv_manifest_free(&m);
}

/* Replaces the first occurrence of from in GOOD with to, parses, and expects an error
 * whose message contains every needle. */
static void expect(const char *from, const char *to, const char *needle)
{
    char text[4096];
    const char *at = strstr(GOOD, from);
    assert_non_null(at);
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - GOOD), GOOD, to, at + strlen(from));
    pv_manifest m;
    pv_err e;
    pv_err_clear(&e);
    assert_int_equal(pv_app_manifest_parse(text, strlen(text), "app_manifest.json", &m, &e),
                     PV_ERR_MANIFEST);
    assert_int_equal(e.code, PV_ERR_MANIFEST);
    if (strncmp(e.msg, "app_manifest.json: ", 19) != 0 || strstr(e.msg, needle) == NULL) {
        fail_msg("expected '%s' in '%s'", needle, e.msg);
    }
    /* Nothing is handed out on failure. */
    assert_null(m.name);
    assert_null(m.caps.peripherals.v);
}

static void test_errors(void **state)
{
    (void)state;
    expect("\"Name\"", "\"Nmae\"", "unknown field 'Nmae'");
    expect("\"MemoryLimitKB\"", "\"MemoryLimit\"", "Capabilities: unknown field 'MemoryLimit'");
    expect("{\"SizeKB\": 128}", "{\"SizeKB\": 128, \"Max\": 1}",
           "Capabilities.MutableStorage: unknown field 'Max'");
    expect("\"SizeKB\": 128", "\"SizeKB\": 0", "field 'SizeKB': 0 is out of range (1..65536)");
    expect("\"SizeKB\": 128", "\"SizeKB\": 65537", "65537 is out of range");
    expect("\"SizeKB\": 128", "\"SizeKB\": \"128\"", "field 'SizeKB': expected an integer");
    expect("{\"SizeKB\": 128}", "{}", "missing required field 'SizeKB'");
    expect("\"ComponentId\": \"6F1C0C8E-3A1E-4D5B-9A43-0C4F2E9B7D21\", ", "",
           "missing required field 'ComponentId'");
    expect("6F1C0C8E-3A1E-4D5B-9A43-0C4F2E9B7D21", "not-a-uuid", "ComponentId 'not-a-uuid'");
    expect("6F1C0C8E-3A1E-4D5B-9A43-0C4F2E9B7D21", "00000000-0000-0000-0000-000000000000",
           "not all zero");
    expect("\"/dev/gpiochip0\"", "\"/dev/ttyS1\"", "peripheral '/dev/ttyS1' is listed twice");
    expect("\"/dev/gpiochip0\"", "\"/etc/shadow\"", "Capabilities.Peripherals[1]");
    expect("\"SchemaVersion\": 1", "\"SchemaVersion\": 2", "SchemaVersion 2");
    expect("\"SchemaVersion\": 1", "\"SchemaVersion\": \"1\"", "expected an integer");
    expect("\"/bin/telemetry\"", "\"bin/telemetry\"", "EntryPoint");
    expect("\"/bin/telemetry\"", "\"/bin/../telemetry\"", "'..'");
    expect("\"--broker\"", "7", "CmdArgs[0]: expected a string");
    expect("\"--broker\"", "\"\\u001b[2J\"", "argument 0 has a control character");
    expect("\"mqtt.example.com\", \"192", "\"bad host!\", \"192",
           "Capabilities.AllowedConnections[0]");
    expect("[8080]", "[0]", "AllowedTcpServerPorts[0]");
    expect("[8080]", "[70000]", "AllowedTcpServerPorts[0]");
    expect("[8080]", "[8080, 8080]", "TCP server port 8080 is listed twice");
    expect("\"Default\"", "\"Debugger\"", "ApplicationType 'Debugger'");
    expect("\"DeviceAuthentication\": true", "\"DeviceAuthentication\": 1",
           "field 'DeviceAuthentication': expected true or false");
    expect("\"ForceReboot\"", "\"Reboot\"", "power control 'Reboot'");
    expect("\"Name\": \"telemetry\"",
           "\"Name\": \"this name is much much much much much much much much much too long\"",
           "longer than 64 bytes");
    expect("\"Name\": \"telemetry\"", "\"Name\": \"a\", \"Name\": \"b\"", "duplicate");
    expect("\"SchemaVersion\": 1,", "\"SchemaVersion\": 1", "line 1");
    expect("\"Capabilities\": {", "\"Capabilities\": [{", "line");
    expect("\"Version\": \"2.0.1\"", "\"Version\": \"2 0\"", "version '2 0'");
    expect("\"Target\": \"board-x\"", "\"Target\": \"board/x\"", "target 'board/x'");
}

static void test_top_level_not_object(void **state)
{
    (void)state;
    pv_manifest m;
    pv_err e;
    assert_int_equal(pv_app_manifest_parse("[]", 2, "m.json", &m, &e), PV_ERR_MANIFEST);
    assert_non_null(strstr(e.msg, "m.json: expected a JSON object"));
    assert_int_equal(pv_app_manifest_parse("", 0, "m.json", &m, &e), PV_ERR_MANIFEST);
}

static void test_load_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("appmanifest");
    char *path = tu_path(dir, "app_manifest.json");
    pv_manifest m;
    pv_err e;
    assert_int_equal(pv_app_manifest_load(path, &m, &e), PV_ERR_NOT_FOUND);
    tu_write(path, GOOD, strlen(GOOD), 0644);
    assert_int_equal(pv_app_manifest_load(path, &m, &e), 0);
    pv_manifest_free(&m);
    /* Larger than the limit: refused before parsing. */
    size_t big = PV_APP_MANIFEST_MAX_FILE + 1;
    char *junk = malloc(big);
    memset(junk, ' ', big);
    tu_write(path, junk, big, 0644);
    assert_int_equal(pv_app_manifest_load(path, &m, &e), PV_ERR_TOO_LARGE);
    free(junk);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),      cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_errors),    cmocka_unit_test(test_top_level_not_object),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
