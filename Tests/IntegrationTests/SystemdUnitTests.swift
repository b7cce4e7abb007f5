// The shipped unit and the daemon agree: lgapd runs a whole job (caption, purify, classify, record,
// publish) under exactly the system-call filter systemd/lgapd.service declares — expanded with
// `systemd-analyze syscall-filter` and applied with libseccomp (seccomp-run), every other call failing
// with EPERM as SystemCallErrorNumber=EPERM makes it. (The unit used to deny @resources, whose
// sched_setscheduler libzmq's threads call and assert on: lgapd died at start under it.)
import Foundation
import JobModel
import ServiceHarness
import TestSupport
import XCTest

final class SystemdUnitTests: ServiceTestCase {
    static var unitPath: String { Fixtures.repositoryRoot + "/systemd/lgapd.service" }

    /// The unit's SystemCallFilter= lines: (deny?, groups and names).
    static func filterLines(_ unit: String) -> [(deny: Bool, items: [String])] {
        unit.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("SystemCallFilter=") else { return nil }
            var value = String(line.dropFirst("SystemCallFilter=".count)).trimmingCharacters(in: .whitespaces)
            let deny = value.hasPrefix("~")
            if deny { value.removeFirst() }
            return (deny, value.split(separator: " ").map(String.init))
        }
    }

    /// A group's system calls, nested groups expanded.
    static func expand(_ item: String, _ seen: inout Set<String>) throws -> Set<String> {
        guard item.hasPrefix("@") else { return [item] }
        guard seen.insert(item).inserted else { return [] }
        let r = try DaemonProcess.runTool("/usr/bin/env", ["systemd-analyze", "syscall-filter", item])
        var out = Set<String>()
        for raw in r.split(separator: "\n").dropFirst() {
            let entry = raw.trimmingCharacters(in: .whitespaces)
            if entry.isEmpty || entry.hasPrefix("#") { continue }
            out.formUnion(try expand(entry, &seen))
        }
        return out
    }

    /// What the unit allows: systemd starts from its allow-lists (always with @default, and the calls it
    /// allows implicitly) and removes the deny-lists.
    static func allowedSyscalls(_ unit: String) throws -> Set<String> {
        var allowed: Set<String> = ["execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"]
        var seen = Set<String>()
        allowed.formUnion(try expand("@default", &seen))
        let lines = filterLines(unit)
        for l in lines where !l.deny { for i in l.items { var s = Set<String>(); allowed.formUnion(try expand(i, &s)) } }
        for l in lines where l.deny { for i in l.items { var s = Set<String>(); allowed.subtract(try expand(i, &s)) } }
        return allowed
    }

    func testLgapdRunsAWholeJobUnderTheUnitsSystemCallFilter() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            throw XCTSkip("systemd-analyze is not installed (Debian: systemd)")
        }
        let unit = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        XCTAssertTrue(unit.contains("SystemCallErrorNumber=EPERM"))
        XCTAssertTrue(unit.split(separator: "\n").contains { $0.hasPrefix("MemoryMax=") }, "the unit bounds the daemon's memory")
        let allowed = try Self.allowedSyscalls(unit)
        XCTAssertFalse(allowed.contains("reboot"))
        XCTAssertFalse(allowed.contains("mount"))
        let list = tmp + "/allowed-syscalls"
        try allowed.sorted().joined(separator: "\n").write(toFile: list, atomically: true, encoding: .utf8)
        var options = DaemonProcess.Options(mode: "router", pack: Self.defaultPack)
        options.wrapper = [try DaemonProcess.product("seccomp-run"), list, "--"]
        let daemon = try startDaemon(options)
        XCTAssertTrue(daemon.log.contains("seccomp-run:"), "ran under the filter\n\(daemon.logTail)")
        let dealer = try producer(daemon, .dealer)
        let results = try collector(daemon)
        try subscribe(results, via: dealer)
        XCTAssertEqual(try dealer.submit(header: ["id": "under-seccomp"], image: try TestImages.png).status, .accepted)
        XCTAssertEqual(results.wait(for: ["under-seccomp"], timeout: 120), [], daemon.logTail)
        XCTAssertEqual(results.results(for: "under-seccomp").first?["status"] as? String, "done")
        XCTAssertEqual(results.results(for: "under-seccomp").first?["stages_run"] as? [String], Self.defaultPackStages)
        stop(daemon)
    }

    /// The fleet template (lgapd@.service) is the single-node unit with only the settings a fleet node
    /// must change: a hardening line added to one and forgotten in the other fails here.
    func testFleetTemplateKeepsTheUnitsHardening() throws {
        func settings(_ path: String) throws -> [String] {
            try String(contentsOfFile: Fixtures.repositoryRoot + path, encoding: .utf8).split(separator: "\n")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        let fleetOnly: Set<String> = ["Description", "ExecStart", "StateDirectory", "After", "Wants", "IPAddressDeny", "IPAddressAllow"]
        let key = { (line: String) in String(line.prefix { $0 != "=" }) }
        let single = try settings("/systemd/lgapd.service").filter { !fleetOnly.contains(key($0)) }
        let fleet = try settings("/systemd/lgapd@.service")
        XCTAssertEqual(fleet.filter { !fleetOnly.contains(key($0)) }, single, "lgapd@.service differs from lgapd.service beyond \(fleetOnly.sorted())")
        XCTAssertTrue(fleet.contains("ExecStart=/usr/local/bin/lgapd --config /etc/lgapd/%i.toml"))
        XCTAssertTrue(fleet.contains("StateDirectory=lgapd-%i"))
    }
}
