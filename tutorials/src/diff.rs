//! A unified diff of two texts, line by line (longest common subsequence),
//! for the last hint: the solution as a change to the learner's file.

/// `before` to `after` as a unified diff of file `path`, three lines of
/// context; empty when they are the same.
pub(crate) fn unified(path: &str, before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let ops = edits(&a, &b);
    if ops.iter().all(|o| matches!(o, Op::Same(..))) {
        return String::new();
    }
    let mut out = format!("--- {path} (yours)\n+++ {path} (solution)\n");
    // Group the edits into hunks with up to three lines of context.
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len())
        .filter(|&i| !matches!(ops[i], Op::Same(..)))
        .collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = changed[i];
        while i < changed.len() && changed[i] <= end + 2 * CONTEXT {
            end = changed[i];
            i += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let (mut la, mut lb) = (0, 0);
        for op in &ops[..start] {
            match op {
                Op::Same(..) => {
                    la += 1;
                    lb += 1;
                }
                Op::Del(_) => la += 1,
                Op::Add(_) => lb += 1,
            }
        }
        let hunk = &ops[start..end];
        let na = hunk.iter().filter(|o| !matches!(o, Op::Add(_))).count();
        let nb = hunk.iter().filter(|o| !matches!(o, Op::Del(_))).count();
        out += &format!("@@ -{},{na} +{},{nb} @@\n", la + 1, lb + 1);
        for op in hunk {
            match op {
                Op::Same(l, _) => out += &format!(" {l}\n"),
                Op::Del(l) => out += &format!("-{l}\n"),
                Op::Add(l) => out += &format!("+{l}\n"),
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Op<'a> {
    Same(&'a str, &'a str),
    Del(&'a str),
    Add(&'a str),
}

fn edits<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push(Op::Same(a[i], b[j]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(Op::Del(a[i]));
            i += 1;
        } else {
            ops.push(Op::Add(b[j]));
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::unified;
    use expect_test::expect;

    #[test]
    fn a_changed_line_shows_with_its_context() {
        let before = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let after = "a\nb\nc\nd\nE\nf\ng\nh\n";
        expect![[r#"
            --- x (yours)
            +++ x (solution)
            @@ -2,7 +2,7 @@
             b
             c
             d
            -e
            +E
             f
             g
             h
        "#]]
        .assert_eq(&unified("x", before, after));
    }

    #[test]
    fn far_apart_changes_are_two_hunks_and_equal_texts_none() {
        let before: String = (0..20).map(|i| format!("{i}\n")).collect();
        let after = before.replace("2\n", "two\n").replace("17\n", "");
        let d = unified("f", &before, &after);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert_eq!(unified("f", &before, &before), "");
    }
}
