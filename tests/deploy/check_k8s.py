#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What the Kubernetes API schemas cannot see in deploy/k8s/: whether the
manifests fit together and fit ferryd.

    check_k8s.py DEPLOY_K8S_DIR [FERRYD]

Prints one line per check, "PASS: k8s_NAME: ..." or "FAIL: k8s_NAME: why"
(scripts/test-summary.sh counts them); exit 1 when one failed.  The
schemas themselves are checked by kubernetes-validate (test_deploy.sh).

  k8s_selectors   every workload's selector matches its pod template, and
                  every Service and PodMonitor selects pods that exist
  k8s_ports       named ports (Service targetPort, probes, PodMonitor)
                  exist on the selected containers; ferryd's --grpc-port
                  and --metrics-port are the ports the pod declares
  k8s_scaling     the HorizontalPodAutoscaler and the KEDA ScaledObject
                  scale a Deployment that exists, on metrics ferryd exports
                  (broker/frontends/metrics.c)
  k8s_proxy       the proxy's server-template resolves the headless
                  Service of the pool's brokers, on their gRPC port; the
                  jobs' FERRY_SERVER names the proxy's Service
  k8s_crds        the custom resources (ScaledObject, PodMonitor), which no
                  offline schema covers, have the fields their operators need
  k8s_ferryd_options  every option given to ferryd is one `ferryd --help`
                  lists (skipped without a built ferryd)
"""
import glob
import os
import re
import subprocess
import sys

import yaml

failed = False


def result(name, problems, ok_msg):
    global failed
    if problems:
        failed = True
        print("FAIL: k8s_%s: %s" % (name, "; ".join(problems)))
    else:
        print("PASS: k8s_%s: %s" % (name, ok_msg))


def load(d):
    docs = []
    for f in sorted(glob.glob(os.path.join(d, "*.yaml")) + glob.glob(os.path.join(d, "*", "*.yaml"))):
        for doc in yaml.safe_load_all(open(f)):
            if doc:
                doc["_file"] = os.path.relpath(f, d)
                docs.append(doc)
    return docs


def ident(doc):
    return "%s %s/%s" % (doc["_file"], doc["kind"], doc["metadata"]["name"])


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def main():
    d = sys.argv[1]
    ferryd = sys.argv[2] if len(sys.argv) > 2 else None
    top = os.path.dirname(os.path.dirname(os.path.abspath(d)))
    docs = load(d)
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    workloads = [w for k in ("Deployment", "DaemonSet") for w in by_kind.get(k, [])]
    pods = [(w, w["spec"]["template"]) for w in workloads]
    pods += [(j, j["spec"]["template"]) for j in by_kind.get("Job", [])]

    def containers(tmpl):
        return tmpl["spec"]["containers"]

    def port_names(tmpl):
        return {p["name"]: p["containerPort"] for c in containers(tmpl)
                for p in c.get("ports", []) if "name" in p}

    # selectors
    probs = []
    for w in workloads:
        if not matches(w["spec"]["selector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"]):
            probs.append("%s: selector does not match its pod template" % ident(w))
    selected = {}
    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector", {})
        hit = [t for _, t in pods if matches(sel, t["metadata"].get("labels", {}))]
        if not hit:
            probs.append("%s selects no pod" % ident(s))
        selected[s["metadata"]["name"]] = hit
    for m in by_kind.get("PodMonitor", []):
        sel = m["spec"]["selector"]["matchLabels"]
        hit = [t for _, t in pods if matches(sel, t["metadata"].get("labels", {}))]
        if not hit:
            probs.append("%s selects no pod" % ident(m))
        selected["podmonitor/" + m["metadata"]["name"]] = hit
    result("selectors", probs, "%d workloads, %d Services, %d PodMonitors" %
           (len(workloads), len(by_kind.get("Service", [])), len(by_kind.get("PodMonitor", []))))

    # ports
    probs = []
    for s in by_kind.get("Service", []):
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort")
            for t in selected.get(s["metadata"]["name"], []):
                if isinstance(tp, str) and tp not in port_names(t):
                    probs.append("%s: targetPort %s is no port of its pods" % (ident(s), tp))
    for m in by_kind.get("PodMonitor", []):
        for e in m["spec"]["podMetricsEndpoints"]:
            for t in selected["podmonitor/" + m["metadata"]["name"]]:
                if e["port"] not in port_names(t):
                    probs.append("%s: port %s is no port of its pods" % (ident(m), e["port"]))
    nprobe = 0
    for w, t in pods:
        names = port_names(t)
        for c in containers(t):
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                pr = c.get(kind)
                if not pr:
                    continue
                nprobe += 1
                act = pr.get("httpGet") or pr.get("tcpSocket") or pr.get("grpc")
                if isinstance(act.get("port"), str) and act["port"] not in names:
                    probs.append("%s: %s port %s undeclared" % (ident(w), kind, act["port"]))
            cmd = c.get("command", []) + c.get("args", [])
            if cmd and cmd[0].endswith("/ferryd"):
                for opt, pname in (("--grpc-port", "grpc"), ("--metrics-port", "metrics")):
                    val = [a.split("=", 1)[1] for a in cmd if a.startswith(opt + "=")]
                    if val and pname in names and int(val[0]) != names[pname]:
                        probs.append("%s: %s=%s but port %s is %d" % (ident(w), opt, val[0], pname, names[pname]))
                    if pname in names and not val and names[pname] != {"grpc": 8001, "metrics": 8002}[pname]:
                        probs.append("%s: port %s is not ferryd's default" % (ident(w), pname))
    result("ports", probs, "Service and PodMonitor ports, %d probes, ferryd's ports" % nprobe)

    # scaling
    probs = []
    deployments = {x["metadata"]["name"] for x in by_kind.get("Deployment", [])}
    src = open(os.path.join(top, "broker", "frontends", "metrics.c")).read()
    exported = set(re.findall(r'"((?:nv|ferry)_[a-z_]+)', src))
    queries = []
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        if h["spec"]["scaleTargetRef"]["name"] not in deployments:
            probs.append("%s scales no Deployment of deploy/k8s" % ident(h))
    for so in by_kind.get("ScaledObject", []):
        if so["spec"]["scaleTargetRef"]["name"] not in deployments:
            probs.append("%s scales no Deployment of deploy/k8s" % ident(so))
        queries += [t["metadata"]["query"] for t in so["spec"]["triggers"]]
    hpa_metrics = {m["pods"]["metric"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])
                   for m in h["spec"]["metrics"] if m["type"] == "Pods"}
    adapter_names = set()
    for cm in by_kind.get("ConfigMap", []):
        if "config.yaml" in cm.get("data", {}):
            for r in yaml.safe_load(cm["data"]["config.yaml"])["rules"]:
                adapter_names.add(r["name"]["as"])
                queries += [r["seriesQuery"], r["metricsQuery"]]
    for m in hpa_metrics - adapter_names:
        probs.append("the HPA's metric %s has no Prometheus adapter rule" % m)
    used = set()
    for q in queries:
        for name in re.findall(r"\b((?:nv|ferry)_[a-z_]+)\b", q):
            used.add(name)
            if name not in exported:
                probs.append("metric %s: ferryd exports no such metric" % name)
    result("scaling", probs, "HPA on %s, KEDA on the same query; metrics %s exported by ferryd" %
           (", ".join(sorted(hpa_metrics)), ", ".join(sorted(used))))

    # the proxy
    probs = []
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    found = 0
    for cm in by_kind.get("ConfigMap", []):
        cfg = cm.get("data", {}).get("haproxy.cfg")
        if not cfg:
            continue
        for host, port in re.findall(r"server-template \S+ \S+ ([\w.-]+):(\d+)", cfg):
            found += 1
            name, ns = host.split(".")[:2]
            s = services.get(name)
            if not s or s["metadata"]["namespace"] != ns:
                probs.append("server-template resolves %s: no such Service" % host)
            elif s["spec"].get("clusterIP") != "None":
                probs.append("server-template resolves %s, which is not headless" % host)
            elif int(port) not in [p["port"] for p in s["spec"]["ports"]]:
                probs.append("%s has no port %s" % (host, port))
    if not found:
        probs.append("no ConfigMap holds an haproxy.cfg with a server-template")
    for _, t in pods:
        for c in containers(t):
            for e in c.get("env", []):
                if e["name"] == "FERRY_SERVER":
                    host = re.match(r"grpc://([^.:]+)\.([^.:]+)", e["value"])
                    s = services.get(host.group(1)) if host else None
                    if not s or "ferry-proxy" != s["spec"]["selector"].get("app.kubernetes.io/name"):
                        probs.append("FERRY_SERVER %s is not the proxy's Service" % e["value"])
    result("proxy", probs, "HAProxy resolves the headless brokers' Service; jobs reach the proxy's Service")

    # custom resources
    probs = []
    for so in by_kind.get("ScaledObject", []):
        for t in so["spec"].get("triggers", []):
            for k in ("serverAddress", "query", "threshold"):
                if k not in t.get("metadata", {}):
                    probs.append("%s: prometheus trigger without %s" % (ident(so), k))
            if t.get("metricType", "AverageValue") not in ("AverageValue", "Value", "Utilization"):
                probs.append("%s: metricType %s" % (ident(so), t["metricType"]))
    for m in by_kind.get("PodMonitor", []):
        for e in m["spec"].get("podMetricsEndpoints", []):
            if "port" not in e:
                probs.append("%s: endpoint without port" % ident(m))
    n = len(by_kind.get("ScaledObject", [])) + len(by_kind.get("PodMonitor", []))
    result("crds", probs, "%d custom resources (no offline schema: fields checked here)" % n)

    # ferryd's options
    if ferryd and os.access(ferryd, os.X_OK):
        helptext = subprocess.run([ferryd, "--help"], capture_output=True, text=True).stdout
        known = set(re.findall(r"(--[a-z][a-z-]+)", helptext))
        probs, nopt = [], 0
        for w, t in pods:
            for c in containers(t):
                cmd = c.get("command", []) + c.get("args", [])
                if cmd and cmd[0].endswith("/ferryd"):
                    for a in cmd[1:]:
                        nopt += 1
                        if a.split("=", 1)[0] not in known:
                            probs.append("%s: ferryd has no option %s" % (ident(w), a))
        result("ferryd_options", probs, "%d options, all in ferryd --help" % nopt)
    else:
        print("SKIP: k8s_ferryd_options: no built ferryd to ask (%s)" % ferryd)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
