//! Pruning: from everything checked to the [`Graph`], keeping only the
//! nodes and keys the registered jobs reach, renumbered.
use super::{Checker, Eval, GArg, Graph, JobNode, Node, Unused};

impl Checker<'_> {
    /// Keeps only what the registered jobs reach, renumbered. When that
    /// is every node and key, the nodes move into the graph as they are
    /// (lent: the next check takes them back, see `resume`).
    pub(super) fn graph(&mut self) -> Option<Graph> {
        let (name, registered, _) = self.register.clone()?;
        let mut node_live = vec![false; self.nodes.len()];
        let mut key_live = vec![false; self.keys.len()];
        fn mark(args: &[GArg], node_live: &mut [bool], key_live: &mut [bool]) {
            for a in args {
                match a {
                    GArg::Node(n) => node_live[*n] = true,
                    GArg::Key(k) => key_live[*k] = true,
                    GArg::Value(_) => {}
                }
            }
        }
        for &j in &registered {
            mark(&self.jobs[j].args, &mut node_live, &mut key_live);
        }
        // A node's arguments are nodes built before it, so one pass from
        // the last node back reaches everything, without recursing down a
        // long chain of devices.
        for n in (0..self.nodes.len()).rev() {
            if node_live[n] {
                mark(&self.nodes[n].args, &mut node_live, &mut key_live);
            }
        }
        let renumber = |live: &[bool]| {
            let mut next = 0;
            live.iter()
                .map(|&l| {
                    if l {
                        next += 1;
                        Some(next - 1)
                    } else {
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let unused = self.unused(&node_live, &registered);
        let (node_map, key_map) = (renumber(&node_live), renumber(&key_live));
        let remap = |args: &[GArg]| -> Vec<GArg> {
            args.iter()
                .map(|a| match a {
                    GArg::Node(n) => GArg::Node(node_map[*n].unwrap_or(usize::MAX)),
                    GArg::Key(k) => GArg::Key(key_map[*k].unwrap_or(usize::MAX)),
                    v => v.clone(),
                })
                .collect()
        };
        let nodes = if node_live.iter().all(|l| *l) && key_live.iter().all(|l| *l) {
            // Nothing renumbered: the nodes are lent as they are.
            self.track.nodes_lent = true;
            std::mem::take(&mut self.nodes)
        } else {
            self.nodes
                .iter()
                .zip(&node_live)
                .filter(|(_, l)| **l)
                .map(|(n, _)| Node {
                    args: remap(&n.args),
                    ..n.clone()
                })
                .collect()
        };
        let keys = self
            .keys
            .iter()
            .zip(&key_live)
            .filter(|(_, l)| **l)
            .map(|(k, _)| k.key.clone())
            .collect();
        let jobs: Vec<JobNode> = registered
            .iter()
            .map(|&j| JobNode {
                args: remap(&self.jobs[j].args),
                ..self.jobs[j].clone()
            })
            .collect();
        Some(Graph {
            name,
            target: self.target,
            nodes,
            keys,
            registered: (0..jobs.len()).collect(),
            jobs,
            unused,
        })
    }

    /// The device and job bindings, in order, that `register` does not
    /// reach: `node_live` says which nodes it reaches.
    fn unused(&self, node_live: &[bool], registered: &[usize]) -> Vec<Unused> {
        // Read off the scope's entries as they lie (a lookup per binding
        // costs more than the rest of a resumed check), then in order.
        let mut found: Vec<(usize, String)> = self
            .scope
            .values()
            .filter_map(|bound| {
                let what = match bound.eval {
                    Eval::Node(n) if !node_live[n] => self.nodes[n].imp.name.to_owned(),
                    Eval::Job(j) if !registered.contains(&j) => {
                        format!("job {}", self.jobs[j].sig.path)
                    }
                    _ => return None,
                };
                Some((bound.index, what))
            })
            .collect();
        found.sort_unstable_by_key(|f| f.0);
        found
            .into_iter()
            .map(|(i, what)| {
                let b = &self.bindings[i];
                Unused {
                    label: b.name.name.clone(),
                    ty: b.ty,
                    what,
                    span: b.stmt,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{check, check_codes};
    use expect_test::expect;

    #[test]
    fn only_what_the_registered_jobs_reach_is_kept_and_renumbered() {
        // `spare`, `idle` and the key `unused` are built but reach no
        // registered job: the nodes after them move down.
        check(
            r#"let spare = kv::mem();
let c = console::default();
let idle = job hello::start(c, time::default(), key("unused", 1));
let store = kv::full(kv::full(kv::mem()));
let run = job hello::level(c, key("level", 2));
let keep = job hello::store(c, store);
register("hello", [keep, run]);
"#,
            expect![[r#"
                warning nym::unused at 1:5 "spare": unused binding `spare`
                  label: this Kv is never used
                  help: pass it to a job, or remove it
                  fix "remove `spare`": 1:1 "let spare = kv::mem();" -> ""
                warning nym::unused at 3:5 "idle": unused binding `idle`
                  label: this Job is never used
                  help: add it to `register(...)` to run it
                  fix "remove `idle`": 3:1 "let idle = job hello::start(c, time::default(), key(\"unused\", 1));" -> ""
                graph "hello" for unix
                  node #0 c = console::default()
                  node #1 kv::mem = kv::mem()
                  node #2 kv::full = kv::full(#1)
                  node #3 store = kv::full(#2)
                  key #0 --level: int = 2
                  job #0 keep = hello::store(#0, #3)
                  job #1 run = hello::level(#0, key #0)
                  unused spare: Kv = kv::mem
                  unused idle: Job = job hello::start
            "#]],
        );
    }

    #[test]
    fn keys_reached_through_devices_are_kept() {
        // The keys feed nodes only, down a chain. `dead` feeds nothing: the
        // key `link` it shares stays, its own key `drop` goes.
        check_codes(
            &[],
            r#"let link = netif::pair(key("link", "tap"));
let dead = netif::lossy(netif::pair(key("link", "tap")), key("drop", 50));
let lossy = netif::lossy(link, key("loss", 5));
let s = stack::direct(lossy, "10.0.0.2/24");
register("hello", [job hello::net(console::default(), s)]);
"#,
            expect![[r#"
                graph "hello" for unix
                  node #0 link = netif::pair(key #0)
                  node #1 lossy = netif::lossy(#0, key #1, 1)
                  node #2 s = stack::direct(#1, 10.0.0.2/24)
                  node #3 console::default = console::default()
                  key #0 --link: string = "tap"
                  key #1 --loss: int = 5
                  job #0 hello::net = hello::net(#3, #2)
                  unused dead: Netif = netif::lossy
            "#]],
        );
    }
}
