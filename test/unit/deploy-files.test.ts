import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";

/**
 * Docker cannot run on this machine, so the deploy files are checked as far as
 * tools allow: the Dockerfile's stages and instructions, every file it copies,
 * the compose file and the Kubernetes manifests as parsed YAML that refer to
 * each other correctly, and the nginx config with `nginx -t`.
 */
const ROOT = new URL("../../", import.meta.url).pathname;
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");

/** The Dockerfile's stages: name -> instructions (continuation lines joined). */
function dockerStages(): Map<string, string[]> {
  const lines = read("Dockerfile").replace(/\\\n/g, " ").split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
  const stages = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of lines) {
    const from = /^FROM\s+\S+\s+AS\s+(\S+)/i.exec(line);
    if (from) {
      current = [];
      stages.set(from[1], current);
    }
    current?.push(line);
  }
  return stages;
}

describe("Dockerfile", () => {
  const stages = dockerStages();

  it("is multi-stage: build, build-gpu, runtime-gpu, and the CPU runtime last (the default target)", () => {
    expect([...stages.keys()]).toEqual(["build", "build-gpu", "node", "runtime-gpu", "runtime"]);
  });

  it("runtime stages run as a non-root user with a HEALTHCHECK on /v1/health, listening on 0.0.0.0", () => {
    for (const name of ["runtime", "runtime-gpu"]) {
      const stage = stages.get(name) ?? [];
      const user = stage.find((line) => line.startsWith("USER "))?.split(/\s+/)[1];
      expect(user, name).toBeDefined();
      expect(["root", "0"]).not.toContain(user);
      expect(stage.some((line) => line.startsWith("HEALTHCHECK") && line.includes("/v1/health")), name).toBe(true);
      expect(stage.some((line) => line.includes("SUTRA_HOST=0.0.0.0")), name).toBe(true);
      expect(stage.find((line) => line.startsWith("ENTRYPOINT"))).toBe('ENTRYPOINT ["node", "bin/sutra.mjs"]');
    }
  });

  it("the GPU target installs the CUDA provider of onnxruntime-node; the CPU build skips it", () => {
    expect(stages.get("build")?.some((line) => line.includes("ONNXRUNTIME_NODE_INSTALL=skip"))).toBe(true);
    const gpu = stages.get("build-gpu") ?? [];
    expect(gpu.some((line) => line.includes("ONNXRUNTIME_NODE_INSTALL=cuda12"))).toBe(true);
    expect(gpu.some((line) => line.includes("npm rebuild onnxruntime-node"))).toBe(true);
    expect(stages.get("runtime-gpu")?.some((line) => line.includes("COPY --from=build-gpu"))).toBe(true);
    expect(stages.get("runtime-gpu")?.some((line) => line.includes("SUTRA_CUDA=1"))).toBe(true);
  });

  it("copies files that exist and that .dockerignore lets through, and builds what prepare builds", () => {
    const ignored = read(".dockerignore").split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
    const copied = (stages.get("build") ?? []).filter((line) => line.startsWith("COPY ")).flatMap((line) => line.split(/\s+/).slice(1, -1));
    expect(copied).toEqual(expect.arrayContaining(["package.json", "package-lock.json", ".npmrc", "bin", "gen", "src", "scripts", "tsconfig.json"]));
    for (const path of copied) {
      expect(existsSync(join(ROOT, path)), path).toBe(true);
      expect(ignored, path).not.toContain(path);
    }
    expect(stages.get("build")?.some((line) => line === "RUN npm run prepare")).toBe(true);
    const { scripts, dependencies } = JSON.parse(read("package.json")) as { scripts: Record<string, string>; dependencies: Record<string, string> };
    expect(scripts.prepare).toContain("scripts/build-dist.mjs");
    expect(scripts.prepare).toContain("dist/scripts/build-default-model.js");
    expect(scripts.prepare).toContain("dist/scripts/build-web.js");
    // The build stage installs production dependencies only: prepare compiles with esbuild and runs plain node.
    expect(scripts.prepare).not.toContain("tsx");
    expect(dependencies).toHaveProperty("esbuild");
    expect(dependencies).not.toHaveProperty("tsx");
  });
});

describe("docker-compose.yml", () => {
  const compose = parseYaml(read("docker-compose.yml"), { merge: true }) as {
    services: Record<string, { build?: { target: string }; image?: string; ports?: string[]; volumes?: string[]; healthcheck?: { test: string[] }; environment?: Record<string, string>; depends_on?: Record<string, { condition: string }> }>;
  };

  it("runs two replicas of the CPU image behind nginx on 8080 (HTTP/1.1) and 9090 (gRPC)", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["nginx", "sutra-1", "sutra-2"]);
    for (const name of ["sutra-1", "sutra-2"]) {
      expect(compose.services[name].build?.target).toBe("runtime");
      expect(compose.services[name].healthcheck?.test.join(" ")).toContain("/v1/health");
    }
    const nginx = compose.services.nginx;
    expect(nginx.ports).toEqual(["8080:8080", "9090:9090"]);
    expect(nginx.volumes).toEqual(["./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro"]);
    expect(nginx.depends_on).toEqual({ "sutra-1": { condition: "service_healthy" }, "sutra-2": { condition: "service_healthy" } });
  });

  it("keeps jobs on sutra-1 only, where nginx sends the job routes", () => {
    expect(compose.services["sutra-1"].volumes).toContain("jobs:/data");
    expect(compose.services["sutra-2"].environment?.SUTRA_DATA_DIR).toBe("");
    const nginx = read("deploy/nginx/nginx.conf");
    expect(/upstream sutra_jobs_grpc \{\s*server sutra-1:8080;/.test(nginx)).toBe(true);
    expect(nginx).toContain("(CreateJob|GetJob|ListJobs|CancelJob|GetJobResults)");
  });

  it("lets every replica answer with auth none for the names nginx and other containers use (SUTRA_ALLOWED_HOSTS)", () => {
    for (const name of ["sutra-1", "sutra-2"]) {
      const setting = compose.services[name].environment?.SUTRA_ALLOWED_HOSTS ?? "";
      const defaults = /^\$\{SUTRA_ALLOWED_HOSTS:-(.*)\}$/.exec(setting)?.[1];
      expect(defaults, `${name}: ${setting}`).toBeDefined();
      expect(defaults!.split(",").sort(), name).toEqual(Object.keys(compose.services).sort());
    }
  });
});

describe("deploy/nginx/nginx.conf", () => {
  const nginx = read("deploy/nginx/nginx.conf");
  const locations = nginx.split(/\n\s*location /).slice(1);

  it("forwards the client's Host, port included, from every location (so the replicas' Host and Origin checks see it)", () => {
    expect(locations.length).toBeGreaterThanOrEqual(4);
    for (const location of locations) {
      const grpc = location.includes("grpc_pass");
      expect(location, location.split("\n", 1)[0]).toContain(grpc ? "grpc_set_header Host $http_host;" : "proxy_set_header Host $http_host;");
    }
  });
});

const hasNginx = existsSync("/usr/sbin/nginx");
it.skipIf(!hasNginx)(
  hasNginx ? "deploy/nginx/nginx.conf passes nginx -t (upstreams on loopback)" : "deploy/nginx/nginx.conf with nginx -t: skipped because /usr/sbin/nginx is missing (install Debian's nginx-light)",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "sutra-nginx-t-"));
    const config = read("deploy/nginx/nginx.conf").replaceAll("sutra-1:8080", "127.0.0.1:18081").replaceAll("sutra-2:8080", "127.0.0.1:18082").replaceAll("/tmp/", `${dir}/`);
    writeFileSync(join(dir, "nginx.conf"), config);
    const output = execFileSync("/usr/sbin/nginx", ["-t", "-p", `${dir}/`, "-c", join(dir, "nginx.conf")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    rmSync(dir, { recursive: true, force: true });
    expect(output).toBe("");
  },
);

describe("Kubernetes manifests (deploy/k8s)", () => {
  type Manifest = { kind: string; metadata: { name: string }; spec: any };
  const manifests: Manifest[] = (parseYaml(read("deploy/k8s/kustomization.yaml")) as { resources: string[] }).resources.flatMap((file) =>
    parseAllDocuments(read(join("deploy/k8s", file))).map((document) => {
      expect(document.errors, file).toEqual([]);
      return document.toJS() as Manifest;
    }),
  );
  const find = (kind: string, name: string): Manifest => {
    const manifest = manifests.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
    if (!manifest) throw new Error(`no ${kind} ${name}`);
    return manifest;
  };

  it("has a Deployment with gRPC health probes, a non-root read-only container and a drain", () => {
    const deployment = find("Deployment", "sutra-embedder");
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    expect(container.startupProbe.grpc).toEqual({ port: 8080 });
    expect(container.readinessProbe.grpc).toEqual({ port: 8080, service: "sutra.embedder.v1.EmbedderService" });
    expect(container.livenessProbe.grpc).toEqual({ port: 8080 });
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(container.volumeMounts.map((mount: { mountPath: string }) => mount.mountPath).sort()).toEqual(["/models", "/tmp"]);
    expect(container.lifecycle.preStop.exec.command).toEqual(["sleep", "5"]);
    expect(container.env.find((variable: { name: string }) => variable.name === "SUTRA_DATA_DIR").value).toBe("");
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
  });

  it("has Services (ClusterIP and headless for client-side gRPC balancing), an HPA and a PDB that select the Deployment", () => {
    const labels = find("Deployment", "sutra-embedder").spec.template.metadata.labels;
    for (const name of ["sutra-embedder", "sutra-embedder-grpc"]) expect(find("Service", name).spec.selector).toEqual(labels);
    expect(find("Service", "sutra-embedder-grpc").spec.clusterIP).toBe("None");
    const hpa = find("HorizontalPodAutoscaler", "sutra-embedder");
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "sutra-embedder" });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(find("PodDisruptionBudget", "sutra-embedder").spec.selector.matchLabels).toEqual(labels);
  });

  it("runs jobs in a one-replica StatefulSet with a volume, and routes the job rpcs and paths to it", () => {
    const jobs = find("StatefulSet", "sutra-jobs");
    expect(jobs.spec.replicas).toBe(1);
    expect(jobs.spec.volumeClaimTemplates[0].metadata.name).toBe("data");
    expect(find("Service", "sutra-jobs").spec.selector).toEqual(jobs.spec.template.metadata.labels);
    const routed = manifests
      .filter((manifest) => manifest.kind === "Ingress")
      .flatMap((ingress) => ingress.spec.rules[0].http.paths)
      .filter((path: { backend: { service: { name: string } } }) => path.backend.service.name === "sutra-jobs")
      .map((path: { path: string }) => path.path);
    for (const rpc of ["CreateJob", "GetJob", "ListJobs", "CancelJob", "GetJobResults"]) expect(routed).toContain(`/sutra.embedder.v1.EmbedderService/${rpc}`);
    expect(routed).toContain("/v1/jobs");
  });

  it("sets SUTRA_ALLOWED_HOSTS on every workload: its Services, the Ingress hosts and the pod IP (probes, Prometheus)", () => {
    const ingressHosts = manifests.filter((manifest) => manifest.kind === "Ingress").flatMap((ingress) => ingress.spec.rules.map((rule: { host: string }) => rule.host));
    const workloads = [
      { workload: find("Deployment", "sutra-embedder"), services: ["sutra-embedder", "sutra-embedder-grpc"] },
      { workload: find("StatefulSet", "sutra-jobs"), services: ["sutra-jobs"] },
    ];
    for (const { workload, services } of workloads) {
      const env: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }> = workload.spec.template.spec.containers[0].env;
      const names = env.map((variable) => variable.name);
      const allowed = env.find((variable) => variable.name === "SUTRA_ALLOWED_HOSTS")?.value?.split(",") ?? [];
      expect(allowed, workload.metadata.name).toEqual(expect.arrayContaining([...services, ...new Set(ingressHosts), "$(POD_IP)"]));
      for (const service of services) expect(find("Service", service).spec.selector).toEqual(workload.spec.template.metadata.labels);
      // $(POD_IP) expands only when POD_IP comes earlier in the list.
      expect(names.indexOf("POD_IP")).toBeGreaterThanOrEqual(0);
      expect(names.indexOf("POD_IP")).toBeLessThan(names.indexOf("SUTRA_ALLOWED_HOSTS"));
      expect(env.find((variable) => variable.name === "POD_IP")?.valueFrom?.fieldRef?.fieldPath).toBe("status.podIP");
    }
  });
});
