//! Every kubectl command in the advice is valid: the commands oomtrace gives
//! after a container-limit kill of each owner kind run through the real
//! `kubectl` (offline: `--local` on a manifest this test writes, with the
//! event's container and a sidecar), and the result has the container's
//! memory limit and request at the limit VPA would set, the sidecar
//! untouched. The kube-system advice's manifests go through kubectl too, and
//! the commands that need a cluster are checked as far as kubectl goes
//! without one: their flags parse (kubectl then fails to reach 127.0.0.1:9)
//! and their columns read a pod manifest.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, Result, bail, ensure};
use oomtrace::diagnosis;
use oomtrace_event::{Advice, AdviceAction, Cause, OwnerKind};
use oomtrace_event::{
    Attribution, Cgroup, OomCgroup, OomEvent, Owner, Qos, Scope, ScopeSource, Victim, WorkloadInfo, WorkloadKind,
};
use oomtrace_testkit::{
    harness::{self, Need},
    trial,
};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// The container's limit at the kill, and what VPA sets after it:
/// max(384 + 100, 384 × 1.2 = 460.8) MiB.
const LIMIT_MIB: u64 = 384;
const NEW_MIB: u64 = 484;
const POD_UID: &str = "4eef3118-9623-43e2-a006-c34d3a41d2fc";
const CONTAINER_ID: &str = "6ff7483e10cdc490cbd3ff5a3389ca2424e1b6840871b27b9c740bc749f54bb9";

fn main() -> ExitCode {
    harness::main(vec![
        trial!(raise_limit_commands_set_the_vpa_limit_for_every_owner_kind, Need::Kubectl),
        trial!(kube_system_advice_gives_kubectl_commands_of_the_guides_shape, Need::Kubectl),
        trial!(node_level_commands_parse_and_their_columns_read_a_pod, Need::Kubectl),
    ])
}

/// A kill of container `container` of pod `namespace/pod` (owned by `owner`)
/// at its own 384 MiB limit, as the node VM's systemd-driver paths name it.
fn container_limit_kill(namespace: &str, pod: &str, container: &str, owner: Owner) -> OomEvent {
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER_ID}.scope",
        POD_UID.replace('-', "_")
    );
    let cgroup = Cgroup { path: Some(path), ..Cgroup::default() };
    let mut workload = WorkloadInfo::new(WorkloadKind::Container, Attribution::Full);
    workload.identity.namespace = Some(namespace.to_owned());
    workload.identity.pod = Some(pod.to_owned());
    workload.identity.container = Some(container.to_owned());
    workload.identity.pod_uid = Some(POD_UID.to_owned());
    workload.identity.qos = Some(Qos::Burstable);
    workload.main_process = Some(true);
    workload.kube_system = Some(namespace == "kube-system");
    workload.owner = Some(owner);
    OomEvent {
        time: "2026-11-29T14:44:04.123456Z".parse().ok(),
        ktime_ns: Some(1_234_567_890),
        oom_id: Some(7),
        killed: Some(true),
        group_kill: Some(true),
        scope: Some(Scope::Memcg),
        scope_source: Some(ScopeSource::OomControl),
        victim_cgroup: Some(cgroup.clone()),
        oom_cgroup: Some(OomCgroup {
            cgroup,
            usage_bytes: Some(LIMIT_MIB * MIB - 8192),
            limit_bytes: Some(LIMIT_MIB * MIB),
        }),
        oom_totalpages: Some(LIMIT_MIB * MIB / 4096),
        node: Some("aks-nodepool1-12345678-vmss000000".to_owned()),
        workload: Some(workload),
        sources: vec!["tracepoint:oom/mark_victim"],
        ..OomEvent::of_victim(Victim {
            pid: 4242,
            tgid: Some(4242),
            comm: Some("app".to_owned()),
            anon_rss_kb: Some(LIMIT_MIB * 1024 - 2048),
            file_rss_kb: Some(0),
            shmem_rss_kb: Some(0),
            ..Victim::default()
        })
    }
}

/// The pod spec of each owner kind: the app container and a sidecar.
const POD_SPEC: &str = "\
containers:
- name: app
  image: registry.example/shop/api:1.4.2
  resources:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {memory: 384Mi}
- name: log-shipper
  image: registry.example/fluent-bit:3.1
  resources:
    requests: {memory: 32Mi}
    limits: {memory: 64Mi}
";

/// `text` with every line indented by `spaces`.
fn indent(text: &str, spaces: usize) -> String {
    text.lines().map(|line| format!("{:spaces$}{line}\n", "")).collect()
}

/// A pod template (`template:` and what is under it) for `name`.
fn template(name: &str, restart_policy: Option<&str>) -> String {
    let restart = restart_policy.map(|p| format!("    restartPolicy: {p}\n")).unwrap_or_default();
    format!("template:\n  metadata:\n    labels: {{app: {name}}}\n  spec:\n{restart}{}", indent(POD_SPEC, 4))
}

/// A realistic manifest of `kind` named `name` in `shop`.
fn manifest(kind: &str, name: &str) -> String {
    let head = |api: &str, kind: &str| {
        format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {{app: {name}}}\n"
        )
    };
    let selector = format!("  selector:\n    matchLabels: {{app: {name}}}\n");
    let template_at = |spaces, restart| indent(&template(name, restart), spaces);
    match kind {
        "deployment" => {
            format!("{}spec:\n  replicas: 3\n{selector}{}", head("apps/v1", "Deployment"), template_at(2, None))
        }
        "statefulset" => {
            format!(
                "{}spec:\n  serviceName: {name}\n{selector}{}",
                head("apps/v1", "StatefulSet"),
                template_at(2, None)
            )
        }
        "daemonset" => format!("{}spec:\n{selector}{}", head("apps/v1", "DaemonSet"), template_at(2, None)),
        "job" => format!("{}spec:\n  backoffLimit: 2\n{}", head("batch/v1", "Job"), template_at(2, Some("Never"))),
        "cronjob" => format!(
            "{}spec:\n  schedule: \"0 * * * *\"\n  jobTemplate:\n    spec:\n{}",
            head("batch/v1", "CronJob"),
            template_at(6, Some("OnFailure"))
        ),
        "pod" => format!("{}spec:\n{}", head("v1", "Pod"), indent(POD_SPEC, 2)),
        other => panic!("no manifest for {other}"),
    }
}

/// Runs kubectl with `args`, `stdin` on its standard input; its stdout.
fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run kubectl")?;
    let mut input = child.stdin.take().context("kubectl's stdin")?;
    input.write_all(stdin.unwrap_or("").as_bytes())?;
    drop(input);
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// The `raise_limit` command for `event`.
fn raise_limit(event: &OomEvent) -> Result<String> {
    let diagnosis = diagnosis::diagnose(event);
    ensure!(diagnosis.cause == Cause::ContainerLimit, "cause {:?}", diagnosis.cause);
    diagnosis
        .advice
        .iter()
        .find(|a| a.action == AdviceAction::RaiseLimit)
        .and_then(|a| a.command.clone())
        .with_context(|| format!("no raise_limit command in {:?}", diagnosis.advice))
}

/// Runs the `kubectl set resources` part of `command` on `manifest` offline:
/// `<kind>/<name> -n <ns>` becomes `-f <manifest> --local -o json`; a
/// pipeline's `kubectl get … -o yaml |` becomes the manifest on stdin.
/// Returns the changed object.
fn run_offline(command: &str, kind: &str, name: &str, manifest: &Path) -> Result<Value> {
    let target = format!("{kind}/{name} -n shop");
    let (set_resources, stdin) = match command.split(" | ").collect::<Vec<_>>().as_slice() {
        [single] => {
            let local = format!("-f {} --local -o json", manifest.display());
            ensure!(single.starts_with(&format!("kubectl set resources {target} -c app ")), "{single}");
            (single.replacen(&target, &local, 1), None)
        }
        [get, set, rest @ ..] => {
            ensure!(*get == format!("kubectl get {target} -o yaml"), "{get}");
            ensure!(set.starts_with("kubectl set resources --local -f - -c app "), "{set}");
            let tail = match rest {
                [replace] => replace.to_string(),
                [] => set.split_once(" -o yaml").map(|(_, after)| after.trim().to_owned()).unwrap_or_default(),
                _ => bail!("unexpected pipeline: {command}"),
            };
            match kind {
                "pod" => ensure!(tail == "kubectl replace --force -f -", "{command}"),
                _ => ensure!(tail == format!("> {name}-{NEW_MIB}Mi.yaml"), "{command}"),
            }
            let set = set.split(" > ").next().unwrap_or(set).replace(" -o yaml", " -o json");
            (set, Some(std::fs::read_to_string(manifest)?))
        }
        _ => bail!("unexpected command: {command}"),
    };
    let words: Vec<&str> = set_resources.split_whitespace().collect();
    ensure!(words.first() == Some(&"kubectl"), "{set_resources}");
    let out = kubectl(&words[1..], stdin.as_deref())?;
    serde_json::from_str(&out).with_context(|| format!("kubectl's output: {out}"))
}

/// The pod template's containers of a changed object of `kind`.
fn containers<'a>(object: &'a Value, kind: &str) -> &'a Value {
    match kind {
        "pod" => &object["spec"]["containers"],
        "cronjob" => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
        _ => &object["spec"]["template"]["spec"]["containers"],
    }
}

fn memory(container: &Value, which: &str) -> Option<String> {
    container["resources"][which]["memory"].as_str().map(str::to_owned)
}

fn raise_limit_commands_set_the_vpa_limit_for_every_owner_kind() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("oomtrace-advice-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cases = [
        ("deployment", "api", "api-7d9f8c6b5d-x2x4q"),
        ("statefulset", "db", "db-2"),
        ("daemonset", "agent", "agent-8kq2m"),
        ("cronjob", "backup", "backup-29463284-x7k2p"),
        ("job", "migrate", "migrate-xk2f9"),
        ("pod", "debug", "debug"),
    ];
    for (kind, name, pod) in cases {
        let file = dir.join(format!("{kind}.yaml"));
        std::fs::write(&file, manifest(kind, name))?;
        let owner = Owner { kind: kind.parse()?, name: name.to_owned(), guessed: false };
        let event = container_limit_kill("shop", pod, "app", owner);
        let command = raise_limit(&event)?;
        let object = run_offline(&command, kind, name, &file).with_context(|| format!("{kind}: {command}"))?;
        let list = containers(&object, kind).as_array().with_context(|| format!("{kind}: no containers: {object}"))?;
        let find = |n: &str| list.iter().find(|c| c["name"] == n).with_context(|| format!("{kind}: no container {n}"));
        let (app, sidecar) = (find("app")?, find("log-shipper")?);
        let new = format!("{NEW_MIB}Mi");
        assert_eq!((memory(app, "limits"), memory(app, "requests")), (Some(new.clone()), Some(new)), "{kind}: {app}");
        assert_eq!(app["resources"]["requests"]["cpu"], "100m", "{kind}: the CPU request stays");
        assert_eq!(
            (memory(sidecar, "limits").as_deref(), memory(sidecar, "requests").as_deref()),
            (Some("64Mi"), Some("32Mi")),
            "{kind}: the sidecar is untouched"
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn advice_of(event: &OomEvent) -> Vec<Advice> {
    diagnosis::diagnose(event).advice
}

/// The heredoc of `kubectl apply -f - <<'EOF' … EOF`.
fn heredoc(command: &str) -> Option<&str> {
    let (_, body) = command.split_once("<<'EOF'\n")?;
    body.split_once("\nEOF\n").map(|(manifest, _)| manifest)
}

fn kube_system_advice_gives_kubectl_commands_of_the_guides_shape() -> Result<()> {
    let deployment = |name: &str| Owner { kind: OwnerKind::Deployment, name: name.to_owned(), guessed: false };
    // metrics-server: the AKS ConfigMap, valid for kubectl, with baseMemory at VPA's limit.
    let event = container_limit_kill(
        "kube-system",
        "metrics-server-5dfc656944-lqxqz",
        "metrics-server",
        deployment("metrics-server"),
    );
    let advice = advice_of(&event);
    let actions: Vec<_> = advice.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["metrics_server_vpa"]);
    let command = advice[0].command.as_deref().context("metrics-server command")?;
    assert!(command.starts_with("kubectl apply -f - <<'EOF'\n"), "{command}");
    let (_, restart) = command.rsplit_once("\nEOF\n").context("the restart after the heredoc")?;
    assert_eq!(restart, "kubectl -n kube-system delete pod -l k8s-app=metrics-server");
    flags_parse(restart)?;
    let config_map = heredoc(command).context("the ConfigMap")?;
    // kubectl parses it offline (label --local needs no cluster).
    let object: Value = serde_json::from_str(&kubectl(
        &["label", "--local", "-f", "-", "-o", "json", "oomtrace.test/parsed=true"],
        Some(config_map),
    )?)?;
    assert_eq!(
        (object["kind"].as_str(), object["metadata"]["namespace"].as_str()),
        (Some("ConfigMap"), Some("kube-system"))
    );
    assert_eq!(object["metadata"]["name"], "metrics-server-config");
    assert_eq!(object["metadata"]["labels"]["addonmanager.kubernetes.io/mode"], "EnsureExists");
    let nanny = object["data"]["NannyConfiguration"].as_str().context("NannyConfiguration")?;
    assert!(
        nanny.contains("kind: NannyConfiguration") && nanny.contains(&format!("baseMemory: {NEW_MIB}Mi")),
        "{nanny}"
    );

    // CoreDNS: its autoscaler's ConfigMap.
    let event = container_limit_kill("kube-system", "coredns-5d78c9869d-q2x7w", "coredns", deployment("coredns"));
    let advice = advice_of(&event);
    assert_eq!(advice.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["coredns_autoscaling"]);
    assert_eq!(advice[0].command.as_deref(), Some("kubectl -n kube-system get configmap coredns-autoscaler -o yaml"));
    flags_parse(advice[0].command.as_deref().unwrap_or(""))?;

    // Another kube-system pod: the guide's system node pool, placeholders marked.
    let owner = Owner { kind: OwnerKind::DaemonSet, name: "kube-proxy".to_owned(), guessed: false };
    let advice = advice_of(&container_limit_kill("kube-system", "kube-proxy-8kq2m", "kube-proxy", owner));
    assert_eq!(advice.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["system_node_pool"]);
    let command = advice[0].command.as_deref().context("az command")?;
    assert!(command.starts_with("az aks nodepool add --resource-group <resource-group> --cluster-name <cluster> "));
    assert!(command.ends_with(" --node-count 3 --node-taints CriticalAddonsOnly=true:NoSchedule --mode System"));
    Ok(())
}

/// `command` (a kubectl command needing a cluster) parses: pointed at a
/// closed loopback port, kubectl gets as far as connecting.
fn flags_parse(command: &str) -> Result<()> {
    let words: Vec<&str> = command.split_whitespace().collect();
    ensure!(words.first() == Some(&"kubectl"), "{command}");
    let out = Command::new("kubectl")
        .args(["--server=http://127.0.0.1:9", "--request-timeout=2s"])
        .args(&words[1..])
        .stdin(Stdio::null())
        .output()
        .context("run kubectl")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(stderr.contains("connection to the server 127.0.0.1:9 was refused"), "{command}: {stderr}");
    Ok(())
}

/// A BestEffort container of a Deployment killed when the node's pods
/// together reached their 14 GiB (`kubepods`) limit.
fn node_allocatable_kill() -> OomEvent {
    let mut event = container_limit_kill(
        "shop",
        "batch-7d9f8c6b5d-x2x4q",
        "app",
        Owner { kind: OwnerKind::Deployment, name: "batch".to_owned(), guessed: false },
    );
    if let Some(workload) = event.workload.as_mut() {
        workload.identity.qos = Some(Qos::BestEffort);
    }
    if let Some(oom) = event.oom_cgroup.as_mut() {
        oom.cgroup = Cgroup { path: Some("/kubepods.slice".to_owned()), ..Cgroup::default() };
        oom.limit_bytes = Some(14 * 1024 * MIB);
        oom.usage_bytes = Some(14 * 1024 * MIB - 4096);
    }
    event
}

fn node_level_commands_parse_and_their_columns_read_a_pod() -> Result<()> {
    let diagnosis = diagnosis::diagnose(&node_allocatable_kill());
    assert_eq!(diagnosis.cause, Cause::NodeAllocatable);
    let command = |action: &str| {
        diagnosis
            .advice
            .iter()
            .find(|a| a.action.as_str() == action)
            .and_then(|a| a.command.clone())
            .with_context(|| format!("no {action} command in {:?}", diagnosis.advice))
    };
    // The limit for the container that had none: VPA's rule on its process's
    // RSS (384 MiB - 2 MiB -> 482 MiB), through kubectl like raise_limit's.
    let dir = std::env::temp_dir().join(format!("oomtrace-advice-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("deployment.yaml");
    std::fs::write(&file, manifest("deployment", "batch"))?;
    let set_limit = command("set_limit")?;
    let object = run_offline(&set_limit, "deployment", "batch", &file)?;
    let app = &containers(&object, "deployment")[0];
    assert_eq!((memory(app, "limits"), memory(app, "requests")), (Some("482Mi".into()), Some("482Mi".into())));

    let list = command("list_pods_without_limits")?;
    flags_parse(&list)?;
    assert!(list.contains(" --field-selector spec.nodeName=aks-nodepool1-12345678-vmss000000 "), "{list}");
    // Its columns, as one JSONPath template, on a Burstable pod with a sidecar.
    let spec = list.split_once("custom-columns=").map(|(_, spec)| spec).context("custom-columns")?;
    let paths: Vec<&str> = spec.split(',').filter_map(|column| column.split_once(':').map(|(_, path)| path)).collect();
    let template = paths.iter().map(|path| format!("{{{path}}}")).collect::<Vec<_>>().join("|");
    let pod = format!("{}status:\n  qosClass: Burstable\n", manifest("pod", "web"));
    let columns = kubectl(
        &["label", "--local", "-f", "-", "oomtrace.test/parsed=true", "-o", &format!("jsonpath={template}")],
        Some(&pod),
    )?;
    assert_eq!(columns, "shop|web|Burstable|256Mi 32Mi|384Mi 64Mi", "{spec}");

    flags_parse(&command("match_requests_to_usage")?)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
