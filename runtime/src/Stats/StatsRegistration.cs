namespace CriShim.Runtime.Stats;

public static class StatsRegistration
{
    public static IServiceCollection AddStats(this IServiceCollection services)
    {
        services.AddSingleton(CgroupReader.Host);
        services.AddSingleton<StatsService>();
        return services;
    }
}
