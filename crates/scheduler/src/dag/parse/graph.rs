//! The task graph: duplicate ids, unknown and repeated upstreams, cycles
//! (reported with their path), then the topological order the DAG keeps.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use diag::{Diags, suggest};
use petgraph::graphmap::DiGraphMap;

use super::tasks::ParsedTask;
use crate::dag::Task;

/// The checked graph: unique tasks and their dependency edges.
pub(super) struct Graph {
    unique: Vec<ParsedTask>,
    graph: DiGraphMap<usize, ()>,
}

/// Tasks in topological order with their upstream and downstream
/// positions.
pub(super) struct Ordered {
    pub tasks: Vec<Task>,
    pub index: HashMap<String, usize>,
    pub upstream: Vec<Vec<usize>>,
    pub downstream: Vec<Vec<usize>>,
}

/// Checks ids and dependencies, recording every problem.
pub(super) fn check_graph(d: &mut Diags<'_>, tasks: Vec<ParsedTask>) -> Graph {
    let mut first_at: HashMap<String, Range<usize>> = HashMap::new();
    let mut unique: Vec<ParsedTask> = Vec::new();
    for (id, task, deps) in tasks {
        if let Some(prev) = first_at.get(id.get_ref()) {
            let (line, _) = d.position(prev.start);
            d.err(
                Some(id.span()),
                format!(
                    "duplicate task id {:?} (first defined on line {line})",
                    id.get_ref()
                ),
            );
            continue;
        }
        first_at.insert(id.get_ref().clone(), id.span());
        unique.push((id, task, deps));
    }
    let ids: Vec<&str> = unique
        .iter()
        .map(|(id, _, _)| id.get_ref().as_str())
        .collect();
    let position: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut graph: DiGraphMap<usize, ()> = DiGraphMap::new();
    for i in 0..unique.len() {
        graph.add_node(i);
    }
    for (i, (id, _, deps)) in unique.iter().enumerate() {
        let mut seen = Vec::new();
        for dep in deps {
            let name = dep.get_ref().as_str();
            if name == id.get_ref() {
                d.err(Some(dep.span()), format!("task {name:?} depends on itself"));
            } else if seen.contains(&name) {
                d.err(
                    Some(dep.span()),
                    format!("task {:?} lists {name:?} twice in depends_on", id.get_ref()),
                );
            } else if let Some(&j) = position.get(name) {
                graph.add_edge(j, i, ());
            } else {
                let hint = suggest(name, &ids)
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                d.err(
                    Some(dep.span()),
                    format!(
                        "task {:?} depends on unknown task {name:?}{hint}",
                        id.get_ref()
                    ),
                );
            }
            seen.push(name);
        }
    }
    for scc in petgraph::algo::tarjan_scc(&graph) {
        if scc.len() > 1 {
            let path = cycle_path(&graph, &scc);
            let names: Vec<&str> = path.iter().map(|&i| ids[i]).collect();
            d.err(
                Some(unique[path[0]].0.span()),
                format!("tasks form a cycle: {} → {}", names.join(" → "), names[0]),
            );
        }
    }

    Graph { unique, graph }
}

impl Graph {
    /// The tasks in topological order. Call only when no problem was
    /// recorded: then every task built and the graph has no cycle.
    pub(super) fn order(self) -> Option<Ordered> {
        let Graph { unique, graph } = self;
        let order = petgraph::algo::toposort(&graph, None).ok()?;
        let mut slots: Vec<Option<Task>> = unique.into_iter().map(|(_, t, _)| t).collect();
        let tasks: Vec<Task> = order
            .iter()
            .map(|&i| slots[i].take())
            .collect::<Option<_>>()?;
        let index: HashMap<String, usize> = tasks
            .iter()
            .enumerate()
            .map(|(p, t)| (t.id.clone(), p))
            .collect();
        let upstream: Vec<Vec<usize>> = tasks
            .iter()
            .map(|t| t.depends_on.iter().map(|dep| index[dep.as_str()]).collect())
            .collect();
        let mut downstream = vec![Vec::new(); tasks.len()];
        for (i, ups) in upstream.iter().enumerate() {
            for &u in ups {
                downstream[u].push(i);
            }
        }
        Some(Ordered {
            tasks,
            index,
            upstream,
            downstream,
        })
    }
}

/// A cycle through the nodes of a strongly connected component, as a path
/// (linear in the component's size: a 20,000-task cycle is one walk).
fn cycle_path(graph: &DiGraphMap<usize, ()>, scc: &[usize]) -> Vec<usize> {
    let members: HashSet<usize> = scc.iter().copied().collect();
    let start = *scc.iter().min().expect("non-empty");
    let mut path = vec![start];
    // Position of each node on the path.
    let mut on_path: HashMap<usize, usize> = HashMap::from([(start, 0)]);
    let mut cur = start;
    loop {
        let mut next: Vec<usize> = graph
            .neighbors(cur)
            .filter(|n| members.contains(n))
            .collect();
        next.sort_unstable();
        if next.contains(&start) && path.len() > 1 {
            return path;
        }
        match next.iter().find(|n| !on_path.contains_key(n)) {
            Some(&n) => {
                on_path.insert(n, path.len());
                path.push(n);
                cur = n;
            }
            None => {
                // Every neighbour is already on the path: the cycle closes there.
                let from = next
                    .iter()
                    .find_map(|n| on_path.get(n))
                    .copied()
                    .unwrap_or(0);
                return path[from..].to_vec();
            }
        }
    }
}
