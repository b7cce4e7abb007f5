// Writes GitDescription.swift (the source tree's `git describe`) into the target through
// scripts/git-describe.sh, which rewrites the file only when the description changed (so an unchanged
// tree recompiles nothing). It runs when git's HEAD or index changes (a commit, a checkout, staging):
// an edit not yet staged shows as "-dirty" from the next of those on.
import Foundation
import PackagePlugin

@main
struct GitDescribe: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let git = root.appending(path: ".git")
        let watched = ["HEAD", "index"].map { git.appending(path: $0) }.filter { FileManager.default.fileExists(atPath: $0.path) }
        return [
            .buildCommand(
                displayName: "git describe → GitDescription.swift",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [root.appending(path: "scripts/git-describe.sh").path, root.path, output.path],
                inputFiles: watched + [root.appending(path: "scripts/git-describe.sh")],
                outputFiles: [output.appending(path: "GitDescription.swift")])
        ]
    }
}
