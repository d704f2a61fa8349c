"""The release form on the dashboard and the budget form of the admin."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.validators import MinValueValidator
from django.utils.translation import gettext_lazy as _

from insight import selectors
from insight.models import Period, PrivacyBudget


class ReleaseForm(forms.Form):
    period = forms.ChoiceField(
        label=_("Figures per"),
        choices=[(Period.WEEK, Period.WEEK.label), (Period.MONTH, Period.MONTH.label)],
    )
    epsilon = forms.DecimalField(
        label=_("Epsilon to spend"),
        min_value=Decimal("0.01"),
        max_value=Decimal(100),
        decimal_places=2,
        help_text=_(
            "Smaller is more private and noisier. The noise's scale is the cells a person may "
            "count in divided by epsilon."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["epsilon"].initial = settings.INSIGHT_DP_EPSILON_PER_RELEASE
        self.fields["epsilon"].widget.attrs.update({"step": "0.01", "inputmode": "decimal"})


class PrivacyBudgetForm(forms.ModelForm):
    class Meta:
        model = PrivacyBudget
        fields = ["month", "epsilon"]
        help_texts = {"month": _("Any day of the month: the budget is per calendar month.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Said in words before the database's check constraint would name itself.
        epsilon = self.fields["epsilon"]
        epsilon.min_value = Decimal(0)
        epsilon.validators.append(MinValueValidator(Decimal(0)))
        epsilon.widget.attrs["min"] = "0"

    def clean_month(self):
        return self.cleaned_data["month"].replace(day=1)

    def validate_unique(self):
        # A month that has a row already gets its epsilon changed
        # (insight.services.privacy_budget_set), not a second row.
        pass

    def clean(self):
        cleaned = super().clean()
        month = cleaned.get("month") or (self.instance.month if self.instance.pk else None)
        epsilon = cleaned.get("epsilon")
        if month is not None and epsilon is not None:
            spent = selectors.budget(month).spent
            if epsilon < spent:
                self.add_error(
                    "epsilon",
                    _("Releases of this month already spent epsilon %(spent)s.") % {"spent": spent},
                )
        return cleaned
