//! Parent links of a trace's spans resolved to positions: finding the cycles that invalid
//! data can make of them, which the tag index builder and the TraceQL evaluator both handle.

/// Calls `on_cycle` once for every cycle of the links `parent` (span position → its parent's
/// position), with the cycle's spans in walk order: the first is where a walk up from a span
/// first met its own path, its parent the last one. Each span is walked once (O(n)).
pub fn find_cycles(parent: &[Option<usize>], mut on_cycle: impl FnMut(&[usize])) {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; parent.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..parent.len() {
        let mut cur = start;
        loop {
            match state.get(cur) {
                Some(&ON_PATH) => {
                    let from = path.iter().position(|&p| p == cur).unwrap_or(0);
                    on_cycle(&path[from..]);
                    break;
                }
                Some(&NEW) => {}
                _ => break,
            }
            state[cur] = ON_PATH;
            path.push(cur);
            match parent[cur] {
                Some(p) => cur = p,
                None => break,
            }
        }
        path.drain(..).for_each(|p| state[p] = DONE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_once_each() {
        // 0 → 1 → 2 → 0 is a cycle; 3 → 0 leads into it; 4 → 5 → 4 another; 6 is a root.
        let parent = [Some(1), Some(2), Some(0), Some(0), Some(5), Some(4), None];
        let mut found: Vec<Vec<usize>> = Vec::new();
        find_cycles(&parent, |c| found.push(c.to_vec()));
        assert_eq!(found, vec![vec![0, 1, 2], vec![4, 5]]);
        find_cycles(&[None, Some(0)], |c| panic!("no cycle: {c:?}"));
        let mut selfish = Vec::new();
        find_cycles(&[Some(0)], |c| selfish.push(c.to_vec()));
        assert_eq!(selfish, vec![vec![0]]);
    }
}
