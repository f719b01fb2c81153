//! The tree of a trace and the structural operators (`>>`, `>`, `~`, `<<`, `<`, their
//! negations and unions). The tree comes from the parent IDs present in the trace, whatever
//! order spans arrive in; each relation is computed in one pass over it, so structural
//! queries cost O(n) per operator after an O(n log n) build.

use std::collections::HashMap;

use skein_format::SpanRecord;

use crate::ast::SpansetOp;

/// Nested-set numbers of a span: `left` when entering it in a depth-first walk, `right`
/// when leaving it, `parent` the parent's `left` (`-1` for a root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NestedSet {
    pub(crate) left: i64,
    pub(crate) right: i64,
    pub(crate) parent: i64,
}

/// Parent links resolved to indices, as a forest.
pub(crate) struct Tree {
    pub(crate) parent: Vec<Option<usize>>,
    /// Children ordered by start time, then index.
    pub(crate) children: Vec<Vec<usize>>,
    /// Every span, parents before children.
    preorder: Vec<usize>,
    /// Nested-set numbers of spans reachable from a span without parent ID; `None` for the
    /// rest (spans under a missing parent).
    pub(crate) nested: Vec<Option<NestedSet>>,
}

impl Tree {
    pub(crate) fn build(spans: &[SpanRecord], rank: &[usize]) -> Tree {
        let n = spans.len();
        let mut by_id: HashMap<&[u8], Vec<usize>> = HashMap::with_capacity(n);
        for (i, s) in spans.iter().enumerate() {
            if !s.span.span_id.is_empty() {
                by_id.entry(s.span.span_id.as_slice()).or_default().push(i);
            }
        }
        let mut parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.span.parent_span_id.is_empty() {
                    return None;
                }
                let candidates = by_id.get(s.span.parent_span_id.as_slice())?;
                pick_parent(spans, i, candidates)
            })
            .collect();
        break_cycles(&mut parent);

        let mut children = vec![Vec::new(); n];
        let mut roots = Vec::new();
        for (i, p) in parent.iter().enumerate() {
            match p {
                Some(p) => children[*p].push(i),
                None => roots.push(i),
            }
        }
        for c in &mut children {
            c.sort_unstable_by_key(|&i| rank[i]);
        }
        roots.sort_unstable_by_key(|&i| rank[i]);

        let mut preorder = Vec::with_capacity(n);
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        while let Some(u) = stack.pop() {
            preorder.push(u);
            stack.extend(children[u].iter().rev());
        }

        let mut nested = vec![None; n];
        let mut counter = 1i64;
        for &root in roots
            .iter()
            .filter(|&&r| spans[r].span.parent_span_id.is_empty())
        {
            // (span, next child to visit)
            let mut stack = vec![(root, 0usize)];
            nested[root] = Some(NestedSet {
                left: counter,
                right: 0,
                parent: -1,
            });
            counter += 1;
            while let Some(top) = stack.last_mut() {
                let (u, next) = *top;
                if let Some(&c) = children[u].get(next) {
                    top.1 += 1;
                    let parent_left = nested[u].map_or(-1, |s| s.left);
                    nested[c] = Some(NestedSet {
                        left: counter,
                        right: 0,
                        parent: parent_left,
                    });
                    counter += 1;
                    stack.push((c, 0));
                } else {
                    if let Some(s) = nested[u].as_mut() {
                        s.right = counter;
                    }
                    counter += 1;
                    stack.pop();
                }
            }
        }

        Tree {
            parent,
            children,
            preorder,
            nested,
        }
    }
}

/// Chooses among spans with the parent's ID. Zipkin-style shared spans give a client and a
/// server span the same ID; a child then hangs under the server span (a server span under
/// the client one), as Tempo resolves it.
fn pick_parent(spans: &[SpanRecord], child: usize, candidates: &[usize]) -> Option<usize> {
    let mut others = candidates.iter().copied().filter(|&c| c != child);
    let first = others.next()?;
    let Some(_) = others.next() else {
        return Some(first);
    };
    const SERVER: i32 = 2;
    const CLIENT: i32 = 3;
    let want = if spans[child].span.kind == SERVER {
        CLIENT
    } else {
        SERVER
    };
    candidates
        .iter()
        .copied()
        .find(|&c| c != child && spans[c].span.kind == want)
        .or(Some(first))
}

/// Cuts parent cycles (invalid data) so that the links form a forest: the span where a walk
/// up first meets itself loses its parent.
fn break_cycles(parent: &mut [Option<usize>]) {
    let mut cut: Vec<usize> = Vec::new();
    skein_format::tree::find_cycles(parent, |cycle| cut.extend(cycle.first()));
    cut.into_iter().for_each(|c| parent[c] = None);
}

/// The five base relations, as "the span is related to some span of the other side".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// Has an ancestor on the other side.
    Descendant,
    /// Is an ancestor of a span on the other side.
    Ancestor,
    /// Its parent is on the other side.
    Child,
    /// Is the parent of a span on the other side.
    Parent,
    /// Shares its parent with another span on the other side.
    Sibling,
}

impl Relation {
    fn inverse(self) -> Relation {
        match self {
            Relation::Descendant => Relation::Ancestor,
            Relation::Ancestor => Relation::Descendant,
            Relation::Child => Relation::Parent,
            Relation::Parent => Relation::Child,
            Relation::Sibling => Relation::Sibling,
        }
    }
}

impl Tree {
    /// For every span, whether it stands in `rel` to some span marked in `other`.
    fn related(&self, rel: Relation, other: &[bool]) -> Vec<bool> {
        let n = self.parent.len();
        let mut out = vec![false; n];
        match rel {
            Relation::Descendant => {
                for &u in &self.preorder {
                    if let Some(p) = self.parent[u] {
                        out[u] = other[p] || out[p];
                    }
                }
            }
            Relation::Ancestor => {
                for &u in self.preorder.iter().rev() {
                    if let Some(p) = self.parent[u]
                        && (other[u] || out[u])
                    {
                        out[p] = true;
                    }
                }
            }
            Relation::Child => {
                for (o, p) in out.iter_mut().zip(&self.parent) {
                    *o = p.is_some_and(|p| other[p]);
                }
            }
            Relation::Parent => {
                for (u, p) in self.parent.iter().enumerate() {
                    if let Some(p) = *p
                        && other[u]
                    {
                        out[p] = true;
                    }
                }
            }
            Relation::Sibling => {
                let mut marked_children = vec![0usize; n];
                for (u, p) in self.parent.iter().enumerate() {
                    if let Some(p) = *p
                        && other[u]
                    {
                        marked_children[p] += 1;
                    }
                }
                for (u, p) in self.parent.iter().enumerate() {
                    if let Some(p) = *p {
                        out[u] = marked_children[p] > usize::from(other[u]);
                    }
                }
            }
        }
        out
    }
}

/// The spans a structural operator selects, given the spans of its two sides.
pub(crate) fn structural(tree: &Tree, op: SpansetOp, lhs: &[usize], rhs: &[usize]) -> Vec<usize> {
    use Relation as R;
    let (rel, mode) = match op {
        SpansetOp::Descendant => (R::Descendant, Mode::Plain),
        SpansetOp::Child => (R::Child, Mode::Plain),
        SpansetOp::Sibling => (R::Sibling, Mode::Plain),
        SpansetOp::Ancestor => (R::Ancestor, Mode::Plain),
        SpansetOp::Parent => (R::Parent, Mode::Plain),
        SpansetOp::NotDescendant => (R::Descendant, Mode::Not),
        SpansetOp::NotChild => (R::Child, Mode::Not),
        SpansetOp::NotSibling => (R::Sibling, Mode::Not),
        SpansetOp::NotAncestor => (R::Ancestor, Mode::Not),
        SpansetOp::NotParent => (R::Parent, Mode::Not),
        SpansetOp::UnionDescendant => (R::Descendant, Mode::Union),
        SpansetOp::UnionChild => (R::Child, Mode::Union),
        SpansetOp::UnionSibling => (R::Sibling, Mode::Union),
        SpansetOp::UnionAncestor => (R::Ancestor, Mode::Union),
        SpansetOp::UnionParent => (R::Parent, Mode::Union),
        SpansetOp::And | SpansetOp::Or => return Vec::new(),
    };
    let n = tree.parent.len();
    let mut in_l = vec![false; n];
    let mut in_r = vec![false; n];
    for &i in lhs {
        in_l[i] = true;
    }
    for &i in rhs {
        in_r[i] = true;
    }
    let right_related = tree.related(rel, &in_l);
    let mut out: Vec<usize> = match mode {
        Mode::Plain => rhs.iter().copied().filter(|&i| right_related[i]).collect(),
        Mode::Not => rhs.iter().copied().filter(|&i| !right_related[i]).collect(),
        Mode::Union => {
            let left_related = tree.related(rel.inverse(), &in_r);
            let mut v: Vec<usize> = rhs.iter().copied().filter(|&i| right_related[i]).collect();
            v.extend(lhs.iter().copied().filter(|&i| left_related[i]));
            v
        }
    };
    out.sort_unstable();
    out.dedup();
    out
}

#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Not,
    Union,
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_testkit::spans::span;

    /// 1 ─┬─ 2 ── 4
    ///    └─ 3
    /// 5 (parent 9, missing)
    fn trace() -> Vec<SpanRecord> {
        vec![
            span("a", "four", 4, Some(2), 40, 50, vec![]),
            span("a", "root", 1, None, 10, 100, vec![]),
            span("a", "three", 3, Some(1), 30, 60, vec![]),
            span("a", "two", 2, Some(1), 20, 70, vec![]),
            span("a", "orphan", 5, Some(9), 15, 16, vec![]),
        ]
    }

    fn tree(spans: &[SpanRecord]) -> Tree {
        let rank: Vec<usize> = {
            let mut order: Vec<usize> = (0..spans.len()).collect();
            order.sort_by_key(|&i| (spans[i].span.start_time_unix_nano, i));
            let mut rank = vec![0; spans.len()];
            for (r, &i) in order.iter().enumerate() {
                rank[i] = r;
            }
            rank
        };
        Tree::build(spans, &rank)
    }

    #[test]
    fn nested_sets_follow_start_order() {
        let spans = trace();
        let t = tree(&spans);
        let ns = |i: usize| t.nested[i].map(|n| (n.left, n.right, n.parent));
        assert_eq!(ns(1), Some((1, 8, -1)));
        assert_eq!(ns(3), Some((2, 5, 1)));
        assert_eq!(ns(0), Some((3, 4, 2)));
        assert_eq!(ns(2), Some((6, 7, 1)));
        assert_eq!(ns(4), None);
    }

    #[test]
    fn relations() {
        let spans = trace();
        let t = tree(&spans);
        let all: Vec<usize> = (0..5).collect();
        // descendants of the root
        assert_eq!(
            structural(&t, SpansetOp::Descendant, &[1], &all),
            vec![0, 2, 3]
        );
        assert_eq!(structural(&t, SpansetOp::Child, &[1], &all), vec![2, 3]);
        assert_eq!(structural(&t, SpansetOp::Ancestor, &[0], &all), vec![1, 3]);
        assert_eq!(structural(&t, SpansetOp::Parent, &[0], &all), vec![3]);
        assert_eq!(structural(&t, SpansetOp::Sibling, &[2], &all), vec![3]);
        assert_eq!(
            structural(&t, SpansetOp::Sibling, &[2, 3], &[2, 3]),
            vec![2, 3]
        );
        assert_eq!(
            structural(&t, SpansetOp::Sibling, &[2], &[2]),
            Vec::<usize>::new()
        );
        assert_eq!(
            structural(&t, SpansetOp::NotDescendant, &[1], &all),
            vec![1, 4]
        );
        assert_eq!(
            structural(&t, SpansetOp::UnionDescendant, &[1, 4], &[0]),
            vec![0, 1]
        );
        assert_eq!(
            structural(&t, SpansetOp::UnionParent, &[0], &[3, 4]),
            vec![0, 3]
        );
        assert_eq!(structural(&t, SpansetOp::NotChild, &[], &[2]), vec![2]);
    }

    #[test]
    fn cycles_are_cut() {
        let spans = vec![
            span("a", "x", 1, Some(2), 0, 1, vec![]),
            span("a", "y", 2, Some(1), 0, 1, vec![]),
            span("a", "z", 3, Some(3), 0, 1, vec![]),
        ];
        let t = tree(&spans);
        assert_eq!(t.parent.iter().filter(|p| p.is_none()).count(), 2);
        assert_eq!(t.parent[2], None);
        assert_eq!(
            structural(&t, SpansetOp::Descendant, &[0, 1, 2], &[0, 1, 2]).len(),
            1
        );
    }
}
