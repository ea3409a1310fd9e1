# lme4 profile intervals and likelihood-ratio tables beyond shared_refs.R, for mixedfx's
# profile / confint / compare tests. Run from this folder:  Rscript intervals_refs.R
suppressMessages({library(lme4); library(jsonlite)})
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
prof <- function(formula, data, REML = TRUE, weights = NULL) {
  data$.w <- if (is.null(weights)) 1 else weights
  m <- lmer(as.formula(formula), data = data, REML = REML, control = ctrl, weights = .w)
  ci <- suppressWarnings(confint(m, method = "profile", oldNames = FALSE))
  list(formula = formula, reml = REML, names = rownames(ci), lower = unname(ci[, 1]),
       upper = unname(ci[, 2]))
}
lrt <- function(formulas, data, refit) {
  ms <- lapply(formulas, function(f) lmer(as.formula(f), data = data, control = ctrl))
  a <- suppressMessages(do.call(anova, c(ms, list(refit = refit))))
  list(formulas = formulas, refit = refit, npar = a$npar, aic = a$AIC, bic = a$BIC,
       loglik = a$logLik, deviance = a[[if ("deviance" %in% names(a)) "deviance" else "-2*log(L)"]],
       chisq = a$Chisq, df = a$Df, p_value = a[["Pr(>Chisq)"]])
}
pastes <- as.data.frame(Pastes)
# a 3 x 3 random-effects term (three correlations), simulated and saved for the tests
set.seed(8)
v3 <- data.frame(g = sprintf("g%02d", rep(1:30, each = 10)), x = round(rnorm(300), 4),
                 z = round(rnorm(300), 4))
b3 <- matrix(rnorm(90), 30) %*% chol(matrix(c(1, .3, .2, .3, .5, .1, .2, .1, .4), 3))
gi <- rep(1:30, each = 10)
v3$y <- round(1 + 0.5 * v3$x - 0.3 * v3$z + b3[gi, 1] + b3[gi, 2] * v3$x + b3[gi, 3] * v3$z +
              rnorm(300), 4)
write.csv(v3, "profile_vector3.csv", row.names = FALSE)
v3 <- read.csv("profile_vector3.csv")
out <- list(
  profile = list(
    dyestuff2_singular = prof("Yield ~ 1 + (1 | Batch)", Dyestuff2),
    sleepstudy_zerocorr = prof("Reaction ~ Days + (Days || Subject)", sleepstudy),
    sleepstudy_ml = prof("Reaction ~ Days + (Days | Subject)", sleepstudy, REML = FALSE),
    penicillin_crossed = prof("diameter ~ 1 + (1 | plate) + (1 | sample)", Penicillin),
    pastes_nested = prof("strength ~ 1 + (1 | batch/cask)", pastes),
    # prior weights 1 + Days/9; lme4's fixed-effect profiles ignore the weights' log-det
    # term (NA or shifted limits), so the tests use only the variance rows of this case
    vector3 = prof("y ~ x + z + (x + z | g)", v3),
    sleepstudy_weighted = prof("Reaction ~ Days + (1 | Subject)", sleepstudy,
                               weights = 1 + sleepstudy$Days / 9)
  ),
  compare = list(
    three = lrt(c("Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (1 | Subject)",
                  "Reaction ~ Days + (Days | Subject)"), sleepstudy, TRUE),
    reml = lrt(c("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"),
               sleepstudy, FALSE)
  ),
  software = paste("R", getRversion(), "lme4", packageVersion("lme4"))
)
write_json(out, "intervals_refs.json", digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null")
