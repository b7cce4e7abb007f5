// swift-tools-version: 6.1
// lgap — Language-Guided Adversarial Purification as a service. The target graph mirrors the
// architecture: C libraries enter through one target each; Tensor → NN → Models; the daemon and CLI
// sit on top. See README.md for the picture.
import PackageDescription

// Release builds stay portable (baseline x86-64 for Swift code); the hot loops in CKernels carry
// AVX-512/AVX2 clones chosen at load time, and GEMMs run in OpenBLAS, which dispatches by CPU itself.
let optimize: [CSetting] = [.unsafeFlags(["-O3"], .when(configuration: .release))]

let package = Package(
    name: "lgap",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lgapd", targets: ["lgapd"]),
        .executable(name: "lgapctl", targets: ["lgapctl"]),
        .executable(name: "lgap-bench", targets: ["lgap-bench"]),
        .library(name: "LGAPFuzzSupport", targets: ["LGAPFuzzSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C libraries: system targets are a module map and a shim header each.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .target(name: "CImageIO", cSettings: optimize,
                linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        .target(name: "CKernels", cSettings: optimize),

        // The engine.
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "NN", dependencies: ["Tensor"]),
        .target(name: "ImageIO", dependencies: ["CImageIO", "Tensor"]),
        .target(name: "Digest"),
        .target(name: "Models", dependencies: ["Tensor", "NN", "ImageIO", "Digest"]),

        // The service: wire protocol, provenance, stages.
        .target(name: "Messaging", dependencies: ["CZeroMQ"]),
        .target(name: "Provenance", dependencies: ["Digest", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "Pipeline"),
        .target(name: "Stages", dependencies: ["Models", "ImageIO", "Tensor", "Digest"]),
        .target(name: "LGAPFuzzSupport", dependencies: ["ImageIO", "Messaging"]),

        // Programs.
        .executableTarget(name: "lgapd", dependencies: [
            "Messaging", "Provenance", "Pipeline", "Stages", "Models", "ImageIO", "Tensor", "Digest", "CZeroMQ",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        .executableTarget(name: "lgapctl", dependencies: [
            "Tensor", "NN", "ImageIO", "Models", "Digest", "Messaging", "Provenance", "Stages", "CZeroMQ",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        .executableTarget(name: "lgap-bench", dependencies: ["Tensor", "NN", "ImageIO", "Models", "Stages", "Messaging", "CZeroMQ"]),
        .executableTarget(name: "lgap-stress", dependencies: ["Messaging", "Provenance", "Digest", "ImageIO", "LGAPFuzzSupport", "CZeroMQ"]),

        // Tests.
        .target(name: "TestSupport", dependencies: ["Tensor", "NN"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "NN", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["Tensor", "NN", "Digest", "TestSupport"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "Tensor", "NN", "Digest", "Messaging", "LGAPFuzzSupport", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "ImageIO", "Tensor", "NN", "Stages", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: ["Messaging", "Provenance", "Pipeline", "Stages", "Models", "ImageIO", "Digest", "TestSupport", "CZeroMQ"]),
    ],
    swiftLanguageModes: [.v6]
)
