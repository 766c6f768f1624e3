// FileTree: what "the same files" means for a restored filesystem (issue 20,
// docs/formats.md "Used-blocks images"): one line per entry under a mount
// point with its relative path, type and mode, owner, size, symlink target,
// extended attributes and content, sorted, so two trees compare with ==
// (and gtest prints the lines that differ). Free space, timestamps other
// than the content's, inode numbers and block placement are not compared.
#ifndef SPARETIME_TESTS_FILE_TREE_H_
#define SPARETIME_TESTS_FILE_TREE_H_

#include <string>
#include <vector>

namespace sparetime::testing {

std::vector<std::string> FileTree(const std::string& root);

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_FILE_TREE_H_
