// swift-tools-version: 6.1
// libFuzzer targets for lgap's input parsers: the job header and the three image decoders.
// Build and run with Fuzz/run.sh (it passes -sanitize=fuzzer,address and -parse-as-library).
import PackageDescription

let package = Package(
    name: "lgap-fuzz",
    dependencies: [.package(name: "lgap", path: "..")],
    targets: [
        .executableTarget(name: "FuzzJobHeader", dependencies: [.product(name: "LGAPFuzzSupport", package: "lgap")]),
        .executableTarget(name: "FuzzPNG", dependencies: [.product(name: "LGAPFuzzSupport", package: "lgap")]),
        .executableTarget(name: "FuzzJPEG", dependencies: [.product(name: "LGAPFuzzSupport", package: "lgap")]),
        .executableTarget(name: "FuzzPPM", dependencies: [.product(name: "LGAPFuzzSupport", package: "lgap")]),
    ]
)
