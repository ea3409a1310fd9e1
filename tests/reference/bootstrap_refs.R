# boot's percentile interval endpoints (norm.inter, used by boot.ci(type = "perc") and so by
# lme4's confint(method = "boot")) for mixedfx's BootstrapResult.confint tests.
# Run from this folder:  Rscript bootstrap_refs.R
suppressMessages({library(boot); library(jsonlite)})
set.seed(20261125)
cases <- list(
  list(t = rnorm(99), level = 0.95),
  list(t = rexp(100), level = 0.95),
  list(t = rnorm(500, 10, 3), level = 0.9),
  list(t = runif(20), level = 0.95),
  list(t = rnorm(10), level = 0.95)  # extreme order statistics as endpoints
)
out <- lapply(cases, function(cs) {
  a <- (1 - cs$level) / 2
  ends <- suppressWarnings(boot:::norm.inter(cs$t, c(a, 1 - a))[, 2])
  list(t = cs$t, level = cs$level, lower = ends[1], upper = ends[2])
})
write_json(list(cases = out, software = paste("R", getRversion(), "boot",
                                              packageVersion("boot"))),
           "bootstrap_refs.json", digits = NA, auto_unbox = TRUE)
