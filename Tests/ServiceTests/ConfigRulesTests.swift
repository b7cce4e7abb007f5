// Configuration rules that need no process: binding beyond loopback needs CURVE (or an explicit
// allow_plaintext_remote), node names are checked, and the shipped Config/lgapd.toml is valid.
import Foundation
@testable import Service
import TestSupport
import XCTest

final class ConfigRulesTests: XCTestCase {
    func testBindingBeyondLoopbackNeedsCurveOrAnExplicitYes() throws {
        for endpoint in ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.7:5555", "tcp://eth0:5555", "tcp://[::]:5555"] {
            var c = DaemonConfig()
            c.ingestEndpoint = endpoint
            XCTAssertThrowsError(try c.validate(), endpoint) { XCTAssertTrue("\($0)".contains("allow_plaintext_remote"), "\($0)") }
            c.allowPlaintextRemote = true
            XCTAssertNoThrow(try c.validate(), endpoint)
        }
        var results = DaemonConfig()
        results.resultsEndpoint = "tcp://0.0.0.0:5556"
        XCTAssertThrowsError(try results.validate(), "the results socket leaks results just the same")
        for endpoint in ["tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555", "ipc:///run/lgap.sock", "inproc://x"] {
            var c = DaemonConfig()
            c.ingestEndpoint = endpoint
            XCTAssertNoThrow(try c.validate(), endpoint)
        }
    }

    func testNodeNames() {
        var c = DaemonConfig()
        for bad in ["", "a b", "x\u{1B}", String(repeating: "n", count: 65)] {
            c.node = bad
            XCTAssertThrowsError(try c.validate(), bad)
        }
        c.node = "node-1.rack_2"
        XCTAssertNoThrow(try c.validate())
    }

    func testShippedConfigLoadsAndValidates() throws {
        let c = try DaemonConfig.load(path: Fixtures.repositoryRoot + "/Config/lgapd.toml")
        XCTAssertNoThrow(try c.validate())
    }
}
