//! The agent images: the recipes (embedded from `container/<recipe>/Dockerfile`), which recipe
//! an agent needs, the labels saying what an image holds and whether it is current, and the
//! names of the images an install uses. All of it pure; building is [`super::build`].
//!
//! It never pulls from a registry: the minimal recipe is `FROM scratch`, the production recipe
//! starts from the Debian base made on this machine ([`super::base`]). It does not find or
//! compile the agent-runner binary (the CLI does).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::{ContainerError, Docker, is_not_found};

/// Tag of the minimal image: shared by installs on this machine (the image is code, a function
/// of the nanoclaw build, not of the install).
pub const DEFAULT_TAG: &str = "nanoclaw-agent:latest";
/// Tag of the production image: shared by installs on this machine, like [`DEFAULT_TAG`].
pub const PRODUCTION_TAG: &str = "nanoclaw-agent:production";
/// The Claude Code release the production image installs from the npm registry.
pub const CLAUDE_CODE_VERSION: &str = "2.1.332";
/// The host's CA bundle, handed to npm inside the build (never to the final image).
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Image label: SHA-256 of the agent-runner inside, so a stale image can be told from a fresh
/// one without running it.
pub const LABEL_RUNNER_DIGEST: &str = "nanoclaw.runner-sha256";
/// Image label: SHA-256 of the recipe's inputs ([`Recipe::inputs`]): with the runner digest,
/// what makes an image current.
pub const LABEL_RECIPE_DIGEST: &str = "nanoclaw.recipe-sha256";
/// Image label: the recipe's name (`minimal`, `production`).
pub const LABEL_RECIPE: &str = "nanoclaw.recipe";
/// Image label: the Claude Code version inside (production images).
pub const LABEL_CLAUDE_CODE_VERSION: &str = "nanoclaw.claude-code-version";
/// Image label set by a Dockerfile whose entrypoint is an init (tini): the host then does not
/// add Docker's own (`--init`), which would make two.
pub const LABEL_INIT: &str = "nanoclaw.init";

/// The build context's layout beside the Dockerfile, runner and CA bundle (see
/// [`super::build::build_context`]); part of every recipe digest, so changing it rebuilds.
pub const CONTEXT_LAYOUT: &str = "rootfs/ 755, rootfs/tmp/ 1777, rootfs/workspace/ 755";

/// An image recipe (a folder under `container/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Recipe {
    /// `FROM scratch` + the static runner (tests, mock provider).
    Minimal,
    /// Debian bookworm, tini, tools, Node, Claude Code and the runner (every real provider).
    /// A superset of [`Recipe::Minimal`]: the mock provider works in it too.
    Production,
}

/// What goes into a build besides the context: build arguments, and the digest of everything
/// that decides the image's content except the runner (which has its own label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInputs {
    pub build_args: BTreeMap<String, String>,
    /// SHA-256 (hex) of the recipe name, Dockerfile, build arguments and context layout.
    pub digest: String,
}

impl Recipe {
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Minimal => "minimal",
            Recipe::Production => "production",
        }
    }

    /// The recipe's Dockerfile, embedded at compile time.
    pub fn dockerfile(self) -> &'static str {
        match self {
            Recipe::Minimal => include_str!("../../../container/minimal/Dockerfile"),
            Recipe::Production => include_str!("../../../container/production/Dockerfile"),
        }
    }

    /// The tag `nanoclaw image build` and `nanoclaw run` use for this recipe.
    pub fn default_tag(self) -> &'static str {
        match self {
            Recipe::Minimal => DEFAULT_TAG,
            Recipe::Production => PRODUCTION_TAG,
        }
    }

    /// The recipe an agent of this provider needs, by its resolved name
    /// ([`crate::provider::resolve`]): `mock` (the offline echo provider) runs in the small
    /// `FROM scratch` image; every other provider, `claude` (the default) included, runs tools
    /// and needs the production image.
    pub fn for_provider(provider: &str) -> Recipe {
        if provider == crate::provider::MOCK {
            Recipe::Minimal
        } else {
            Recipe::Production
        }
    }

    /// True when the recipe starts from the locally made Debian base (`BASE_IMAGE`).
    pub fn needs_base(self) -> bool {
        self == Recipe::Production
    }

    /// The build arguments and recipe digest; `base` is the Debian base's tag (production).
    pub fn inputs(self, base: Option<&str>) -> BuildInputs {
        let mut build_args = BTreeMap::new();
        if self == Recipe::Production {
            build_args.insert(
                "BASE_IMAGE".to_string(),
                base.unwrap_or_default().to_string(),
            );
            build_args.insert(
                "CLAUDE_CODE_VERSION".to_string(),
                CLAUDE_CODE_VERSION.to_string(),
            );
        }
        let mut hasher = Sha256::new();
        for part in [self.name(), self.dockerfile(), CONTEXT_LAYOUT] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for (key, value) in &build_args {
            hasher.update(format!("{key}={value}").as_bytes());
            hasher.update([0]);
        }
        BuildInputs {
            build_args,
            digest: hex(&hasher.finalize()),
        }
    }

    /// The labels a build of this recipe gets (beside the Dockerfile's own `LABEL`s).
    pub fn labels(self, inputs: &BuildInputs, runner_digest: &str) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (LABEL_RUNNER_DIGEST.to_string(), runner_digest.to_string()),
            (LABEL_RECIPE_DIGEST.to_string(), inputs.digest.clone()),
            (LABEL_RECIPE.to_string(), self.name().to_string()),
        ]);
        if self == Recipe::Production {
            labels.insert(
                LABEL_CLAUDE_CODE_VERSION.to_string(),
                CLAUDE_CODE_VERSION.to_string(),
            );
        }
        labels
    }
}

/// Whether an existing image holds what a build would make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// No image with that tag.
    Missing,
    /// Same recipe digest and runner digest: nothing to build.
    Current,
    /// It exists but holds something else; the reason, for the person waiting.
    Stale(&'static str),
}

/// Compares an image's labels (`None`: no such image) with what a build would label it.
pub fn freshness(
    labels: Option<&HashMap<String, String>>,
    recipe_digest: &str,
    runner_digest: &str,
) -> Freshness {
    let Some(labels) = labels else {
        return Freshness::Missing;
    };
    let label = |key: &str| labels.get(key).map(String::as_str);
    if label(LABEL_RECIPE_DIGEST) != Some(recipe_digest) {
        Freshness::Stale("its recipe differs (another nanoclaw version built it)")
    } else if label(LABEL_RUNNER_DIGEST) != Some(runner_digest) {
        Freshness::Stale("its agent-runner is out of date")
    } else {
        Freshness::Current
    }
}

/// The image each recipe uses in one `nanoclaw run`: the recipes' default tags, or one tag
/// for every agent (`run --image`); and the per-agent images of agents with packages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentImages {
    pub minimal: String,
    pub production: String,
    /// Agent name → its per-agent image (`containers::agent_image`): agents with packages
    /// whose image was built, or that keep their previous one after a failed build.
    pub per_agent: BTreeMap<String, String>,
}

impl Default for AgentImages {
    fn default() -> AgentImages {
        AgentImages {
            minimal: Recipe::Minimal.default_tag().to_string(),
            production: Recipe::Production.default_tag().to_string(),
            per_agent: BTreeMap::new(),
        }
    }
}

impl AgentImages {
    /// Every agent without its own `image` uses `tag`, whatever its provider.
    pub fn single(tag: &str) -> AgentImages {
        AgentImages {
            minimal: tag.to_string(),
            production: tag.to_string(),
            per_agent: BTreeMap::new(),
        }
    }

    /// The image of agent `name` without its own `image`: its per-agent image when it has
    /// one, else its provider's.
    pub fn for_agent(&self, name: &str, provider: &str) -> &str {
        self.per_agent
            .get(name)
            .map_or_else(|| self.for_provider(provider), String::as_str)
    }

    /// The base a per-agent image of an agent without its own `image` starts from: the
    /// production image whatever the provider (the minimal one is `FROM scratch`, without
    /// apt or npm; the mock provider runs in either).
    pub fn package_base(&self) -> &str {
        self.tag(Recipe::Production)
    }

    pub fn tag(&self, recipe: Recipe) -> &str {
        match recipe {
            Recipe::Minimal => &self.minimal,
            Recipe::Production => &self.production,
        }
    }

    /// The image of an agent without its own `image`, by its resolved provider.
    pub fn for_provider(&self, provider: &str) -> &str {
        self.tag(Recipe::for_provider(provider))
    }

    /// The images nanoclaw must provide for these agents, `(provider, own image, has
    /// packages)` each (the configured provider, resolved here as the spawn resolves it), and
    /// the recipe to build each with. Agents with their own image need nothing from us; an
    /// agent with packages needs the production image (its per-agent image's base,
    /// [`AgentImages::package_base`]). When one tag serves agents of both recipes (`--image`),
    /// it gets the production recipe: the mock provider works in either.
    pub fn needed<'a>(
        &self,
        agents: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, bool)>,
    ) -> BTreeMap<String, Recipe> {
        let mut needed: BTreeMap<String, Recipe> = BTreeMap::new();
        for (provider, own_image, has_packages) in agents {
            if own_image.is_some_and(|tag| !tag.trim().is_empty()) {
                continue;
            }
            let recipe = if has_packages {
                Recipe::Production
            } else {
                let provider = crate::provider::resolve(crate::provider::Sources::config(provider));
                Recipe::for_provider(&provider)
            };
            let entry = needed.entry(self.tag(recipe).to_string()).or_insert(recipe);
            *entry = (*entry).max(recipe);
        }
        needed
    }
}

/// SHA-256 (hex) of a runner binary, as stored in [`LABEL_RUNNER_DIGEST`].
pub fn runner_digest(runner: &[u8]) -> String {
    hex(&Sha256::digest(runner))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The labels of the image with this tag; `None` when there is no such image.
pub async fn image_labels(
    docker: &Docker,
    tag: &str,
) -> Result<Option<HashMap<String, String>>, ContainerError> {
    match docker.client.inspect_image(tag).await {
        Ok(image) => Ok(Some(
            image
                .config
                .and_then(|config| config.labels)
                .unwrap_or_default(),
        )),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// True when the daemon has an image with this tag.
pub async fn image_exists(docker: &Docker, tag: &str) -> Result<bool, ContainerError> {
    Ok(image_labels(docker, tag).await?.is_some())
}

/// The size in bytes of the image with this tag (`None`: no such image).
pub async fn image_size(docker: &Docker, tag: &str) -> Result<Option<i64>, ContainerError> {
    match docker.client.inspect_image(tag).await {
        Ok(image) => Ok(image.size),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_recipe_runs_the_runner_from_scratch() {
        let dockerfile = Recipe::Minimal.dockerfile();
        assert!(dockerfile.contains("FROM scratch"));
        assert!(dockerfile.contains("ENTRYPOINT [\"/agent-runner\"]"));
    }

    #[test]
    fn production_recipe_runs_the_runner_under_tini_as_the_agent_user() {
        let dockerfile = Recipe::Production.dockerfile();
        assert!(dockerfile.contains("ENTRYPOINT [\"/usr/bin/tini\", \"--\", \"/agent-runner\"]"));
        assert!(dockerfile.contains("CMD [\"--workspace\", \"/workspace\"]"));
        assert!(dockerfile.contains("USER 10001:10001"));
        assert!(dockerfile.contains("LABEL nanoclaw.init=\"tini\""));
        assert!(
            !dockerfile
                .lines()
                .any(|line| line.starts_with("FROM ") && line.contains('/')),
            "never FROM a registry image"
        );
    }

    #[test]
    fn mock_agents_need_the_minimal_image_and_every_other_provider_the_production_one() {
        let cases = [
            (Some("mock"), Recipe::Minimal),
            (Some(" Mock "), Recipe::Minimal),
            (Some("claude"), Recipe::Production),
            (None, Recipe::Production),
            (Some("codex"), Recipe::Production),
            (Some(""), Recipe::Production),
        ];
        for (provider, recipe) in cases {
            let resolved = crate::provider::resolve(crate::provider::Sources::config(provider));
            assert_eq!(Recipe::for_provider(&resolved), recipe, "{provider:?}");
        }
    }

    #[test]
    fn needed_images_follow_the_providers_of_agents_without_their_own_image() {
        let defaults = AgentImages::default();
        let mock_only =
            defaults.needed([(Some("mock"), None, false), (Some("mock"), Some(""), false)]);
        assert_eq!(
            mock_only,
            BTreeMap::from([(DEFAULT_TAG.to_string(), Recipe::Minimal)])
        );
        let mixed = defaults.needed([
            (Some("mock"), None, false),
            (None, None, false),
            (Some("claude"), Some("my-image:1"), false),
        ]);
        assert_eq!(
            mixed,
            BTreeMap::from([
                (DEFAULT_TAG.to_string(), Recipe::Minimal),
                (PRODUCTION_TAG.to_string(), Recipe::Production),
            ])
        );
        assert!(defaults.needed([(None, Some("mine:1"), true)]).is_empty());
        assert_eq!(
            defaults.needed([(Some("mock"), None, true)]),
            BTreeMap::from([(PRODUCTION_TAG.to_string(), Recipe::Production)]),
            "packages need apt: a mock agent with packages builds on the production image"
        );
        let single = AgentImages::single("one:tag");
        assert_eq!(
            single.needed([(Some("mock"), None, false), (Some("claude"), None, false)]),
            BTreeMap::from([("one:tag".to_string(), Recipe::Production)]),
            "one tag for both: the superset recipe"
        );
        assert_eq!(single.for_provider("mock"), "one:tag");
        assert_eq!(defaults.for_provider("mock"), DEFAULT_TAG);
        assert_eq!(defaults.for_provider("claude"), PRODUCTION_TAG);
        let mut with_packages = AgentImages::default();
        with_packages
            .per_agent
            .insert("andy".into(), "nanoclaw-agent-ab-andy:0123".into());
        assert_eq!(
            with_packages.for_agent("andy", "mock"),
            "nanoclaw-agent-ab-andy:0123"
        );
        assert_eq!(with_packages.for_agent("bob", "mock"), DEFAULT_TAG);
    }

    #[test]
    fn recipe_digest_covers_dockerfile_base_and_claude_code_version() {
        let minimal = Recipe::Minimal.inputs(None);
        assert!(minimal.build_args.is_empty());
        assert_eq!(minimal, Recipe::Minimal.inputs(None), "deterministic");
        let production = Recipe::Production.inputs(Some("nanoclaw-base:bookworm-0123"));
        expect_test::expect![[r#"
            {
                "BASE_IMAGE": "nanoclaw-base:bookworm-0123",
                "CLAUDE_CODE_VERSION": "2.1.332",
            }
        "#]]
        .assert_debug_eq(&production.build_args);
        let other_base = Recipe::Production.inputs(Some("nanoclaw-base:bookworm-4567"));
        assert_ne!(production.digest, other_base.digest);
        assert_ne!(production.digest, minimal.digest);
        assert_eq!(production.digest.len(), 64);
    }

    #[test]
    fn labels_name_runner_recipe_and_claude_code_version() {
        let inputs = Recipe::Production.inputs(Some("base"));
        let labels: BTreeMap<_, _> = Recipe::Production
            .labels(&inputs, "abc")
            .into_iter()
            .map(|(key, value)| (key, value.replace(&inputs.digest, "$DIGEST")))
            .collect();
        expect_test::expect![[r#"
            {
                "nanoclaw.claude-code-version": "2.1.332",
                "nanoclaw.recipe": "production",
                "nanoclaw.recipe-sha256": "$DIGEST",
                "nanoclaw.runner-sha256": "abc",
            }
        "#]]
        .assert_debug_eq(&labels);
        let minimal = Recipe::Minimal.labels(&Recipe::Minimal.inputs(None), "abc");
        assert!(!minimal.contains_key(LABEL_CLAUDE_CODE_VERSION));
    }

    #[test]
    fn an_image_is_current_only_with_the_same_recipe_and_runner() {
        let labels = HashMap::from([
            (LABEL_RECIPE_DIGEST.to_string(), "r1".to_string()),
            (LABEL_RUNNER_DIGEST.to_string(), "x1".to_string()),
        ]);
        assert_eq!(freshness(None, "r1", "x1"), Freshness::Missing);
        assert_eq!(freshness(Some(&labels), "r1", "x1"), Freshness::Current);
        assert!(matches!(
            freshness(Some(&labels), "r2", "x1"),
            Freshness::Stale(why) if why.contains("recipe")
        ));
        assert!(matches!(
            freshness(Some(&labels), "r1", "x2"),
            Freshness::Stale(why) if why.contains("agent-runner")
        ));
        assert!(matches!(
            freshness(Some(&HashMap::new()), "r1", "x1"),
            Freshness::Stale(_)
        ));
    }
}
