# Simulated count data (counts_sim.csv) and lme4 glmer.nb references (negbin_refs.json).
# Run from this folder: Rscript negbin_refs.R
suppressMessages({library(lme4); library(MASS); library(jsonlite)})
set.seed(20251125)
n_site <- 30; n_plot <- 2; n_obs <- 6
d <- expand.grid(rep=seq_len(n_obs), plot=seq_len(n_plot), site=seq_len(n_site))
d$site <- sprintf("s%02d", d$site)
d$plot <- paste0("p", d$plot)
z_site <- setNames(round(rnorm(n_site), 3), unique(d$site))
d$z <- unname(z_site[d$site])
d$trt <- ifelse(d$plot == "p1", "A", "B")
d$x <- round(rnorm(nrow(d)), 3)
u_site <- setNames(rnorm(n_site, 0, 0.6), unique(d$site))
v_plot <- rnorm(n_site * n_plot, 0, 0.3)
pid <- as.integer(factor(paste(d$site, d$plot)))
eta <- 0.5 + 0.3 * d$x - 0.4 * d$z + 0.5 * (d$trt == "B") + u_site[d$site] + v_plot[pid]
d$y <- rnbinom(nrow(d), mu=exp(eta), size=2.5)
eta_b <- -0.3 + 0.8 * d$x - 0.5 * d$z + u_site[d$site] * 1.5 + rnorm(n_site, 0, 0.5)[as.integer(factor(d$site))] * d$x
d$yb <- rbinom(nrow(d), 1, plogis(eta_b))
d <- d[, c("site", "plot", "rep", "trt", "x", "z", "y", "yb")]
write.csv(d, "counts_sim.csv", row.names=FALSE)

d <- read.csv("counts_sim.csv", stringsAsFactors=TRUE)
nb_ref <- function(name, formula, nAGQ=1) {
  m <- glmer.nb(as.formula(formula), data=d, nAGQ=nAGQ)
  list(name=name, formula=formula, nAGQ=nAGQ, theta=getME(m, "glmer.nb.theta"),
       fixef=as.list(fixef(m)), se=as.list(sqrt(diag(as.matrix(vcov(m))))),
       varcorr_sd=as.list(setNames(as.data.frame(VarCorr(m))$sdcor, as.data.frame(VarCorr(m))$grp)),
       loglik=as.numeric(logLik(m)), aic=AIC(m), converged=is.null(m@optinfo$conv$lme4$messages))
}
out <- list(nb_ref("site", "y ~ x + trt + (1 | site)"),
            nb_ref("site_plot", "y ~ x + z + trt + (1 | site/plot)"),
            nb_ref("site_agq7", "y ~ x + trt + (1 | site)", nAGQ=7))
# lme4's log-likelihood for nAGQ > 1 omits constants, and for the negative binomial they
# depend on theta: glmer.nb's theta with nAGQ = 7 is then far from the Laplace one (a quirk
# of lme4 documented here, not a target)
out[[3]]$note <- "lme4 nAGQ>1 loglik omits theta-dependent constants: theta not comparable"
names(out) <- sapply(out, function(x) x$name)
mu_glm <- fitted(glm(y ~ x + trt, family=poisson, data=d))
out$theta_ml <- list(formula="y ~ x + trt", note="MASS::theta.ml at the Poisson GLM's means",
                     mu=unname(mu_glm), theta=as.numeric(theta.ml(d$y, mu_glm, limit=50)))
out$software <- paste("lme4", packageVersion("lme4"), "MASS", packageVersion("MASS"))
write(toJSON(out, auto_unbox=TRUE, digits=NA, pretty=TRUE), "negbin_refs.json")
