// lgap-stress: reliability programs (not tests) that drive a real lgapd.
//   lgap-stress soak  [--jobs N] [--kills K] [--rate R] [--max-attempts A] [--pack DIR] [--images DIR] [--lgapd PATH] [--workdir DIR]
//   lgap-stress fuzz-wire [--messages N] ...
//   lgap-stress overload [--seconds S] ...
import Foundation

let argv = Array(CommandLine.arguments.dropFirst())
func value(_ name: String) -> String? {
    guard let i = argv.firstIndex(of: name), i + 1 < argv.count else { return nil }
    return argv[i + 1]
}

/// The default pack's sample images: under the current directory or the nearest folder above the
/// binary that holds models/cifar10-mini (the binary lives in .build/<triple>/release/).
func defaultSamples() -> String {
    let relative = "models/cifar10-mini/samples"
    if FileManager.default.fileExists(atPath: relative) { return relative }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent(relative).path
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return relative
}

/// Image files from --images DIR (default: the default pack's samples) as bytes.
func loadImages() throws -> [[UInt8]] {
    let dir = value("--images") ?? defaultSamples()
    let files = (try FileManager.default.contentsOfDirectory(atPath: dir)).filter { $0.hasSuffix(".jpg") || $0.hasSuffix(".png") }.sorted()
    guard !files.isEmpty else { throw StressError("no images in \(dir)") }
    return try files.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
}

do {
    let workdir = value("--workdir") ?? NSTemporaryDirectory() + "lgap-stress-\(getpid())"
    try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
    switch argv.first {
    case "soak":
        var o = SoakOptions(images: try loadImages(), lgapd: value("--lgapd") ?? defaultLgapd(), pack: value("--pack"), workdir: workdir)
        if let v = value("--jobs").flatMap(Int.init) { o.jobs = v }
        if let v = value("--kills").flatMap(Int.init) { o.kills = v }
        if let v = value("--rate").flatMap(Double.init) { o.rate = v }
        if let v = value("--port").flatMap(Int.init) { o.port = v }
        if let v = value("--max-attempts").flatMap(Int.init) { o.maxAttempts = v }
        try runSoak(o)
    case "fuzz-wire":
        var o = FuzzWireOptions(images: try loadImages(), lgapd: value("--lgapd") ?? defaultLgapd(), pack: value("--pack"), workdir: workdir)
        if let v = value("--messages").flatMap(Int.init) { o.messages = v }
        if let v = value("--port").flatMap(Int.init) { o.port = v }
        if let v = value("--seed").flatMap(UInt64.init) { o.seed = v }
        try runFuzzWire(o)
    case "overload":
        var o = OverloadOptions(images: try loadImages(), lgapd: value("--lgapd") ?? defaultLgapd(), pack: value("--pack"), workdir: workdir)
        if let v = value("--seconds").flatMap(Double.init) { o.seconds = v }
        if let v = value("--port").flatMap(Int.init) { o.port = v }
        if let v = value("--producers").flatMap(Int.init) { o.producers = v }
        try runOverload(o)
    default:
        throw StressError("usage: lgap-stress soak|fuzz-wire|overload [options] (see Sources/lgap-stress/main.swift)")
    }
} catch {
    FileHandle.standardError.write("lgap-stress: \(error)\n".data(using: .utf8)!)
    exit(1)
}
